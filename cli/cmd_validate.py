"""`tomobile validate DIR`: checksums, then every artifact against the stored eager outputs."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..runtime.report import format_table
from ..runtime.validate import validate_export


def cmd_validate(args: argparse.Namespace) -> int:
    folder = Path(args.dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder; give the DIR that `tomobile export` wrote")
    report = validate_export(folder, progress=not args.quiet)
    print(format_table(report))
    return 0 if report.passed else 1


def add_parser(sub) -> None:
    p = sub.add_parser("validate", help="check an exported folder's checksums, and its artifacts against the "
                                        "eager outputs stored at export time",
                       description="Check DIR's checksums, then run every artifact on the test vectors stored in "
                                   "DIR/test_vectors and compare with the eager PyTorch outputs recorded there at "
                                   "export time (eager PyTorch is not run again).")
    p.add_argument("dir", metavar="DIR", help="a folder written by `tomobile export`")
    p.set_defaults(handler=cmd_validate)
