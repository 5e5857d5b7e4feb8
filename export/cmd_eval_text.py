"""`tomobile eval text`: ToMe on all-MiniLM-L6-v2 (real weights), quality against the unmerged model
and eager speed, on Python's own help topics. `add_text_parser` plugs into the `eval` group."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path


def _ints(text: str, what: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{what} must be comma-separated integers, got {text!r}") from None
    if not values or min(values) < 0:
        raise ValueError(f"{what} must be one or more integers >= 0, got {text!r}")
    return values


def cmd_eval_text(args: argparse.Namespace) -> int:
    from tomobile.runtime.text_eval import format_table, run_text_eval

    seq_lens = _ints(args.seq_lens, "--seq-lens")
    rs = _ints(args.r, "--r")
    if min(seq_lens) < 8 or args.runs < 1 or args.threads < 1:
        raise ValueError("--seq-lens must be >= 8, --runs and --threads >= 1")
    report = run_text_eval(seq_lens, rs, limit=args.limit or None, runs=args.runs, threads=args.threads,
                           progress=not args.quiet)
    table = format_table(report)
    print(table)
    if args.json:
        Path(args.json).write_text(json.dumps({"model": report.model, "pairs": report.pairs, "threads": report.threads,
                                               "rows": [asdict(r) for r in report.rows]}, indent=2) + "\n")
        print(f"wrote {args.json}")
    if args.markdown:
        Path(args.markdown).write_text(table + "\n")
        print(f"wrote {args.markdown}")
    return 0


def add_text_parser(kinds) -> None:
    """Register `text` under the `eval` subparsers."""
    t = kinds.add_parser("text", help="ToMe on all-MiniLM-L6-v2: embedding cosine, retrieval top-1, eager speed",
                         description="Quality and speed of ToMe on a real sentence encoder, on pydoc help topics.")
    t.add_argument("--seq-lens", default="128,256", metavar="LIST", help="sequence lengths (default: 128,256)")
    t.add_argument("--r", default="0,2,4,8", metavar="LIST", help="r per layer; 0 is always included (default: 0,2,4,8)")
    t.add_argument("--limit", type=int, default=0, help="use only the first N topics (default: all)")
    t.add_argument("--runs", type=int, default=15, help="timed eager runs per r (default: 15)")
    t.add_argument("--threads", type=int, default=2, help="torch threads for the timing (default: 2)")
    t.add_argument("--json", metavar="FILE", help="write the rows as JSON")
    t.add_argument("--markdown", metavar="FILE", help="write the table as Markdown")
    t.set_defaults(handler=cmd_eval_text)
