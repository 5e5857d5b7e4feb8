"""The `tomobile` command line. Arguments become config objects here, at the boundary; library
code never sees an argparse namespace. Bad input ends in one line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from importlib import metadata
from pathlib import Path

from tomobile.graphs.config import SPEC_HELP, MergeConfig, SpecError
from tomobile.graphs.exportable import ModelBundle
from tomobile.graphs.registry import UnknownModelError
from tomobile.runtime.validate import ValidationError

from . import quiet
from .checks import note
from .cmd_generate import add_tdtm_args, tdtm_options
from .opcheck import UnsupportedOpError
from .output import OutputError, check_out_dir
from .registry import ExportOptions, FormatError, check_options, exporters, option_values, parse_formats

# Command modules beside this one; each has add_parser(subparsers) that sets `handler`.
_COMMAND_MODULES = ("cmd_generate", "cmd_eval", "cmd_bench")
DEFAULT_OUT = Path("tomobile-out")


# Bad input: printed as one line, exit code 2. (A bare KeyError is a bug, not bad input: it shows a traceback.)
USER_ERRORS = (SpecError, FormatError, UnknownModelError, OutputError, UnsupportedOpError, ValidationError,
               FileNotFoundError, ValueError)


class Terminated(BaseException):
    """SIGTERM, raised like KeyboardInterrupt so that every cleanup on the way out runs."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (`tomobile: error: ...`, exit 2) and `-q` accepted after the
    subcommand as well as before it."""

    def __init__(self, *args, **kwargs) -> None:
        top = kwargs.pop("top", False)
        super().__init__(*args, **kwargs)
        # On subcommands -q defaults to SUPPRESS, so a -q given before the subcommand is kept.
        self.add_argument("-q", "--quiet", action="store_true", default=False if top else argparse.SUPPRESS,
                          help="no progress bars")

    def error(self, message: str):
        where = "" if self.prog == "tomobile" else f"{self.prog.removeprefix('tomobile ')}: "
        self.exit(2, f"tomobile: error: {where}{message}\n")


def resolve_model(name: str, config: MergeConfig, options: dict[str, str] | None = None) -> ModelBundle:
    """A built-in model name or a local Hugging Face model folder -> bundle, patched per `config`;
    `options` (the video model's TDTM modes) only for a built-in model that takes them."""
    from tomobile.graphs.registry import get_model, load_builtin_models
    from tomobile.graphs.zoo import load_local

    models = load_builtin_models()
    if name in models:
        _refuse_options(name, models, options or {})
        return get_model(name).builder(config, **(options or {}))
    path = Path(name)
    if path.exists():
        _refuse_options(name, models, options or {})
        return load_local(path, config)
    if os.sep in name or name.startswith("."):
        raise FileNotFoundError(f"no folder {name}; MODEL is a built-in name (see `tomobile models`) or a local "
                                "Hugging Face model folder")
    return get_model(name).builder(config)  # raises UnknownModelError listing the built-in names


def _refuse_options(name: str, models: dict, options: dict[str, str]) -> None:
    """Model options (the TDTM modes) that `name` does not take are a one-line error."""
    unknown = [k for k in options if k not in (models[name].options if name in models else ())]
    if unknown:
        takers = ", ".join(n for n, e in sorted(models.items()) if set(unknown) <= set(e.options))
        flags = " and ".join("--" + k.replace("_", "-") for k in unknown)
        raise ValueError(f"{flags} {'apply' if len(unknown) > 1 else 'applies'} only to {takers} (the models with TDTM "
                         f"modes), not to {name}")


def source_folder(name: str) -> Path | None:
    """The local model folder that MODEL names (an export must not replace it), or None."""
    from tomobile.graphs.registry import load_builtin_models

    return None if name in load_builtin_models() or not Path(name).exists() else Path(name)


def check_trace_source(config: MergeConfig, bundle: ModelBundle) -> None:
    """trace_source=1 must reach an output: refuse it where no exported part outputs sources."""
    outputs = [n for part in bundle.parts.values() for n in part.output_names]
    if config.trace_source and not any("source" in n for n in outputs):
        raise SpecError(f"trace_source=1 has no effect on {bundle.name}: its exported outputs "
                        f"({', '.join(outputs)}) do not include token sources; drop trace_source")


def cmd_models(args: argparse.Namespace) -> int:
    from tomobile.graphs.registry import load_builtin_models

    models = load_builtin_models()
    width = max(len(n) for n in models)
    for name, entry in sorted(models.items()):
        print(f"{name.ljust(width)}  {entry.description}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from tomobile.runtime.validate import format_table, validate_dir

    from .output import discard, finalize
    from .pipeline import stage_export, write_manifest
    from .split import list_parts, split_bundle

    config = MergeConfig.parse(args.merge)
    formats = parse_formats(args.format)
    options = ExportOptions(backend=args.backend, precision=args.precision, quantize=args.quantize)
    notes = check_options(formats, options)
    tdtm = tdtm_options(args)
    source = source_folder(args.model)
    out_arg = Path(args.out) if args.out else DEFAULT_OUT / (source.resolve().name if source else args.model)
    out = check_out_dir(out_arg, force=args.force, keep=(source,) if source else ())
    bundle = resolve_model(args.model, config, tdtm)
    check_trace_source(config, bundle)
    if args.split:
        bundle = split_bundle(bundle, args.split, args.quantize)
    for line in notes:
        note(line)
    staging, manifest = stage_export(bundle, formats, out, options, progress=not args.quiet)
    try:
        if args.split:
            manifest["split"] = list_parts(manifest)
            write_manifest(staging.path, manifest)
        passed = True
        if not args.no_validate:
            report = validate_dir(staging.path, progress=not args.quiet)
            manifest["validation"] = report.to_json()
            write_manifest(staging.path, manifest)
            print(format_table(report).replace(str(staging.path), str(out_arg)))
            passed = report.passed
        finalize(staging)
    except BaseException:
        discard(staging)
        raise
    for a in manifest["artifacts"]:
        weights = f" + {a['weights']['path']} {a['weights']['bytes'] / 1e6:.1f} MB" if "weights" in a else ""
        print(f"wrote {out_arg / a['path']}  ({a['bytes'] / 1e6:.1f} MB{weights}, {a['format']}, "
              f"{a.get('precision', 'fp32')})")
    print(f"wrote {out_arg / 'manifest.json'}")
    return 0 if passed else 1


def cmd_validate(args: argparse.Namespace) -> int:
    from tomobile.runtime.validate import format_table, validate_dir

    folder = Path(args.dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder; give the DIR that `tomobile export` wrote")
    report = validate_dir(folder, progress=not args.quiet)
    print(format_table(report))
    return 0 if report.passed else 1


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="tomobile", top=True,
        description="Token-merging transformers as static graphs for phones: export to ONNX, Core ML and "
                    "ExecuTorch, validated against eager PyTorch.")
    parser.add_argument("--version", action="version", version=f"tomobile {metadata.version('tomobile')}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("models", help="list the built-in model names")
    p.set_defaults(handler=cmd_models)

    p = sub.add_parser("export", help="export a model (with merging) and validate every artifact",
                       description="Export MODEL to mobile formats into DIR with manifest.json, then validate.")
    p.add_argument("model", metavar="MODEL", help="a built-in name (see `tomobile models`) or a local Hugging Face "
                                                  "model folder (config.json + weights)")
    p.add_argument("--merge", default="none", metavar="SPEC", help=f"token merging: {SPEC_HELP} (default: none)")
    p.add_argument("--format", default="onnx,coreml,executorch", metavar="LIST",
                   help=f"comma-separated formats from: {', '.join(exporters())} (default: all)")
    p.add_argument("--out", metavar="DIR",
                   help=f"output folder (default: {DEFAULT_OUT}/MODEL); an earlier tomobile export there is "
                        "replaced, a folder with other files is refused")
    p.add_argument("--force", action="store_true", help="replace whatever is at --out (never the model folder)")
    p.add_argument("--backend", choices=option_values("backend"),
                   help=f"ExecuTorch backend (default: {option_values('backend')[0]}); {_honoured_by('backend')}")
    p.add_argument("--precision", choices=option_values("precision"), default="fp32",
                   help=f"default: fp32; {_honoured_by('precision')}")
    p.add_argument("--quantize", choices=option_values("quantize"),
                   help="int8: dynamic int8 weights for onnx, static PT2E int8 (XNNPACK quantizer, calibrated on the "
                        f"seeded inputs) for executorch; validated by PSNR against fp32 eager; {_honoured_by('quantize')}")
    p.add_argument("--no-validate", action="store_true", help="skip validation against eager PyTorch")
    p.add_argument("--split", choices=("blocks",), help="video denoisers: also write them as ordered parts (embedding, "
                                                        "one per transformer block and merge variant, final) for "
                                                        "`generate --stream`; each part validated on its slice")
    add_tdtm_args(p, "the checkpoint's recorded setting (video models only)")
    p.set_defaults(handler=cmd_export)

    p = sub.add_parser("validate", help="check an exported folder's checksums, and its artifacts against the "
                                        "eager outputs stored at export time",
                       description="Check DIR's checksums, then run every artifact on the test vectors stored in "
                                   "DIR/test_vectors and compare with the eager PyTorch outputs recorded there at "
                                   "export time (eager PyTorch is not run again).")
    p.add_argument("dir", metavar="DIR", help="a folder written by `tomobile export`")
    p.set_defaults(handler=cmd_validate)

    for module in _COMMAND_MODULES:
        importlib.import_module(f"{__package__}.{module}").add_parser(sub)
    return parser


def _honoured_by(option: str) -> str:
    """'fp16 applies to executorch, coreml' for the help text, from what each exporter declares."""
    users = {v: ", ".join(n for n, e in exporters().items() if e.honours(option, v))
             for v in option_values(option) if v != "fp32"}
    if len(users) > 1 and len(set(users.values())) == 1:
        return f"applies to {next(iter(users.values()))}"
    return "; ".join(f"{v} applies to {formats}" for v, formats in users.items())


def _terminate(signum: int, frame) -> None:
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    """Run one command. Exit codes: 0 done, 1 a validation failure, 2 bad input, 130 Ctrl-C, 143 SIGTERM;
    each error is one line on stderr."""
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        quiet.install()
        args = build_parser().parse_args(argv)
        with quiet.native_logs_filtered():
            return args.handler(args)
    except USER_ERRORS as err:
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


if __name__ == "__main__":
    sys.exit(main())
