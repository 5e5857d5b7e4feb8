"""The `tomobile` command line. Arguments become config objects here, at the boundary; library
code never sees an argparse namespace.

Errors: a `TomobileError` (bad input, a missing or damaged file; FileNotFoundError counts too) ends
in one line on stderr and exit code 2; anything else is a bug and shows its traceback (exit 1).
`--debug` (or TOMOBILE_DEBUG=1) shows the traceback for user errors too."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback
from importlib import metadata

from ..graphs.errors import TomobileError
from ..runtime.runners.coreai import exit_process
from . import cmd_bench, cmd_eval, cmd_export, cmd_generate, cmd_models, cmd_validate, quiet

# One module per command, in the order `tomobile --help` lists them; each add_parser(subparsers) sets `handler`.
COMMANDS = (cmd_models, cmd_export, cmd_validate, cmd_generate, cmd_eval, cmd_bench)
# Bad input: printed as one line, exit code 2. Anything else (a bare ValueError or KeyError too) is a bug.
USER_ERRORS = (TomobileError, FileNotFoundError)


class Terminated(BaseException):
    """SIGTERM, raised like KeyboardInterrupt so that every cleanup on the way out runs."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (`tomobile: error: ...`, exit 2) and `-q` / `--debug` accepted
    after the subcommand as well as before it."""

    def __init__(self, *args, **kwargs) -> None:
        top = kwargs.pop("top", False)
        super().__init__(*args, **kwargs)
        # On subcommands the flags default to SUPPRESS, so one given before the subcommand is kept.
        self.add_argument("-q", "--quiet", action="store_true", default=False if top else argparse.SUPPRESS,
                          help="no progress bars")
        self.add_argument("--debug", action="store_true", default=False if top else argparse.SUPPRESS,
                          help="show the traceback of an error (also TOMOBILE_DEBUG=1)")

    def error(self, message: str):
        where = "" if self.prog == "tomobile" else f"{self.prog.removeprefix('tomobile ')}: "
        self.exit(2, f"tomobile: error: {where}{message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="tomobile", top=True,
        description="Token-merging transformers as static graphs for phones: export to ONNX, Core ML and "
                    "ExecuTorch, validated against eager PyTorch.")
    parser.add_argument("--version", action="version", version=f"tomobile {metadata.version('tomobile')}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def _terminate(signum: int, frame) -> None:
    raise Terminated


def _debug_env() -> bool:
    return os.environ.get("TOMOBILE_DEBUG", "") not in ("", "0")


def main(argv: list[str] | None = None) -> int:
    """Run one command. Exit codes: 0 done, 1 a validation failure or a bug (with its traceback),
    2 bad input, 130 Ctrl-C, 143 SIGTERM; each user error is one line on stderr."""
    previous = signal.signal(signal.SIGTERM, _terminate)
    debug = _debug_env()
    try:
        quiet.install()
        args = build_parser().parse_args(argv)
        debug = debug or args.debug
        with quiet.native_logs_filtered():
            return args.handler(args)
    except USER_ERRORS as err:
        if debug:
            traceback.print_exc()
        message = str(err)
        print(f"tomobile: error: {message.splitlines()[0] if message else type(err).__name__}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tomobile: error: interrupted (Ctrl-C)", file=sys.stderr)
        return 130
    except Terminated:
        print("tomobile: error: terminated (SIGTERM)", file=sys.stderr)
        return 143
    finally:
        signal.signal(signal.SIGTERM, previous)


def run() -> None:
    """The `tomobile` console script and `python -m tomobile.cli`: `main`'s code becomes the exit
    status (runtime/runners/coreai.py exit_process: where Core AI's runtime was loaded, without the
    interpreter teardown that its Swift side can abort)."""
    exit_process(main())


if __name__ == "__main__":
    run()
