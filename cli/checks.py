"""Checks the CLI runs on its arguments before any work: argparse value types that refuse what
makes no sense (non-finite numbers, negative counts), output-file paths, one-line notes.

A check fails with a one-line message; the CLI prints it as `tomobile: error: ...` and exits 2.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from ..export.output import OutputError, check_parent_writable, nearest_existing


def finite_float(text: str) -> float:
    """argparse type: a finite decimal number (nan and inf are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def int_at_least(low: int):
    """argparse type: a plain decimal integer >= `low`."""

    def parse(text: str) -> int:
        stripped = text.strip()
        digits = stripped.removeprefix("-")
        if not (digits.isascii() and digits.isdigit()):
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer")
        value = int(stripped)
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is below {low}; give an integer >= {low}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


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
