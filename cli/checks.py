"""Checks the CLI runs on its arguments before any work: argparse value types that refuse what
makes no sense (non-finite numbers, negative counts), output-file paths, one-line notes.

A check fails with a one-line message; the CLI prints it as `tomobile: error: ...` and exits 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..export.output import OutputError, check_parent_writable, nearest_existing
from ..graphs.numbers import NumberError, parse_float, parse_int, parse_int_list, parse_pixel_size

MAX_THREADS = 4 * (os.cpu_count() or 1)  # more threads than this only oversubscribe (99999 crashed or hung)
THREADS_HELP = f"1..{MAX_THREADS} (4 x this machine's {os.cpu_count() or 1} cores)"
MAX_STEPS = 10_000  # sampler steps and timed runs: far above any useful count, a bound on the work one typo can start
MAX_SEED = 2**64 - 1  # the noise generator's state is a uint64 (runtime/noise.py)


def _argparse_type(parse, name: str):
    """A graphs/numbers.py parser as an argparse type (argparse prints its one line)."""

    def convert(text: str):
        try:
            return parse(text)
        except NumberError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    convert.__name__ = name
    return convert


def finite_float(text: str) -> float:
    """argparse type: a decimal number finite as a float32, the dtype the samplers use it in (nan,
    inf and 1e308 are refused)."""
    return _argparse_type(lambda t: parse_float(t, "value", "float32"), "float32 number")(text)


def int_at_least(low: int, high: int | None = None):
    """argparse type: a plain decimal integer (ASCII digits) in [low, high]."""
    return _argparse_type(lambda t: parse_int(t, "value", low, high),
                          f"integer >= {low}" if high is None else f"integer {low}..{high}")


def pixel_size(text: str) -> tuple[int, int]:
    """argparse type: `--size` HxW in pixels, or one number for a square."""
    return _argparse_type(parse_pixel_size, "pixel size")(text)


def thread_count(text: str) -> int:
    """argparse type: one thread count, 1..MAX_THREADS."""
    return _argparse_type(lambda t: parse_int(t, "thread count", 1, MAX_THREADS), "thread count")(text)


def parse_threads(text: str) -> list[int]:
    """'1,2' -> [1, 2]: thread counts 1..MAX_THREADS, no empty item, none twice."""
    return parse_int_list(text, "--threads", 1, MAX_THREADS)



def check_output_file(path: Path | None, option: str, suffixes: tuple[str, ...] = ()) -> None:
    """An output file path must end in one of `suffixes` (if given), must not be a folder, and must
    lie in a folder that exists or can be made and written."""
    if path is None:
        return
    if suffixes and path.suffix.lower() not in suffixes:
        raise OutputError(f"{option} {path} must end in {' or '.join(suffixes)}")
    if path.is_dir():
        raise OutputError(f"{option} {path} is a folder; give a file name")
    check_parent_writable(path, option)


def check_output_folder(path: Path, option: str) -> None:
    """A folder to write files into: it may exist (as a folder) or be made, and must be writable."""
    anchor = nearest_existing(path)
    if not anchor.is_dir():
        where = "is a file" if anchor == path else f"is under {anchor}, which is a file"
        raise OutputError(f"{option} {path} {where}; give a folder")
    check_parent_writable(path / "file", option)


def note(message: str) -> None:
    """A one-line remark on stderr that is not an error (the command goes on)."""
    print(f"tomobile: note: {message}", file=sys.stderr)
