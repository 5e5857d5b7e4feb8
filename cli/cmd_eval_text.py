"""`tomobile eval text`: ToMe (and PiToMe at ToMe's token counts) on all-MiniLM-L6-v2 (real weights),
quality against the unmerged model and speed in eager PyTorch and exported (ONNX Runtime,
ExecuTorch), on Python's own help topics. `add_text_parser` plugs into the `eval` group."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from ..export.output import check_out_dir
from ..export.pipeline import export_model
from ..export.registry import ExportOptions
from ..graphs.errors import InputError
from ..graphs.methods.registry import make_plan
from ..graphs.models.text_context import minilm_dir
from ..graphs.models.zoo import sentence_bundle
from ..graphs.numbers import parse_int_list
from ..graphs.spec.config import MergeConfig
from ..runtime.manifest import DEFAULT_OUT
from ..runtime.text_eval import METHODS, format_table, minilm_layers, run_text_eval, setting_configs
from .checks import MAX_STEPS, THREADS_HELP, check_output_file, int_at_least, thread_count


def _ints(text: str, what: str) -> list[int]:
    """Comma-separated integers >= 0 (graphs/numbers.py: digits 0-9, no empty item, none twice)."""
    return parse_int_list(text, what, 0)


def _check_settings(seq_lens: list[int], rs: list[int]) -> None:
    """Every length fits MiniLM's position table and every r fits every length, before any work."""
    config = json.loads((minilm_dir() / "config.json").read_text())
    longest = int(config["max_position_embeddings"])
    bad = [n for n in seq_lens if not 8 <= n <= longest]
    if bad:
        raise InputError(f"--seq-lens {bad[0]} is out of range: all-MiniLM-L6-v2 takes 8..{longest} tokens")
    for n in seq_lens:
        for r in rs:
            if r:
                make_plan(MergeConfig.parse(f"tome:r={r}"), int(config["num_hidden_layers"]), n, class_token=True)


_RUNTIMES = ("eager", "onnxruntime", "executorch")


def _exports(seq_lens: list[int], rs: list[int], runtimes: list[str], work: Path, reuse: bool,
             progress: bool, methods: tuple[str, ...] = ("tome",)) -> dict[tuple[int, object], Path]:
    """(seq_len, setting) -> folder with the MiniLM sentence encoder exported to the asked formats."""
    formats = [f for f, rt in (("onnx", "onnxruntime"), ("executorch", "executorch")) if rt in runtimes]
    folders = {}
    for seq_len in seq_lens:
        for (method, r), (config, _) in setting_configs(seq_len, minilm_layers(), rs, methods).items():
            name = f"L{seq_len}_r{r}" if method in ("none", "tome") else f"L{seq_len}_{method}_r{r}"
            folder = check_out_dir(work / name, force=None, option="--work folder")
            bundle = sentence_bundle(minilm_dir(), config, f"minilm-l6-{seq_len}", seq_len=seq_len)
            export_model(bundle, formats, folder, ExportOptions(), validate=False, reuse=reuse, progress=progress)
            folders[seq_len, (method, r)] = folder
    return folders


def cmd_eval_text(args: argparse.Namespace) -> int:
    seq_lens = _ints(args.seq_lens, "--seq-lens")
    rs = _ints(args.r, "--r")
    _check_settings(seq_lens, rs)
    check_output_file(Path(args.json) if args.json else None, "--json", (".json",))
    check_output_file(Path(args.markdown) if args.markdown else None, "--markdown", (".md", ".markdown", ".txt"))
    methods = tuple(n.strip() for n in args.methods.split(",") if n.strip())
    if not methods or any(m not in METHODS for m in methods) or len(set(methods)) != len(methods):
        raise InputError(f"--methods must list some of {', '.join(METHODS)} once each, got {args.methods!r}")
    runtimes = [n.strip() for n in args.runtime.split(",") if n.strip()]
    if not runtimes or any(n not in _RUNTIMES for n in runtimes) or "eager" not in runtimes:
        raise InputError(f"--runtime must list eager and any of {', '.join(_RUNTIMES[1:])}, got {args.runtime!r}")
    exported = tuple(n for n in _RUNTIMES[1:] if n in runtimes)
    exports = None
    if exported:
        work = Path(args.work) if args.work else DEFAULT_OUT / "eval-text"
        exports = _exports(seq_lens, rs, list(exported), work, args.reuse, not args.quiet, methods)
    report = run_text_eval(seq_lens, rs, limit=args.limit or None, runs=args.runs, threads=args.threads,
                           progress=not args.quiet, exports=exports, runtimes=exported, methods=methods)
    table = format_table(report)
    print(table)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"model": report.model, "pairs": report.pairs, "threads": report.threads,
                                               "rows": [asdict(r) for r in report.rows]}, indent=2) + "\n")
        print(f"wrote {args.json}")
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(table + "\n")
        print(f"wrote {args.markdown}")
    return 0


def add_text_parser(kinds) -> None:
    """Register `text` under the `eval` subparsers."""
    t = kinds.add_parser("text", help="ToMe (and PiToMe) on all-MiniLM-L6-v2: embedding cosine, retrieval top-1, "
                                      "speed (eager, ONNX Runtime, ExecuTorch)",
                         description="Quality and speed of ToMe on a real sentence encoder, on pydoc help topics. "
                                     "Exports every (seq len, r) once, then times eager and exported side by side.")
    t.add_argument("--seq-lens", default="128,256", metavar="LIST", help="sequence lengths, 8..512 (default: 128,256)")
    t.add_argument("--r", default="0,2,4,8", metavar="LIST", help="r per layer; 0 is always included (default: 0,2,4,8)")
    t.add_argument("--methods", default="tome", metavar="LIST",
                   help="tome and/or pitome; pitome runs at ToMe's tokens per layer for each r (default: tome)")
    t.add_argument("--limit", type=int_at_least(0), default=0, help="use only the first N topics (default: all)")
    t.add_argument("--runs", type=int_at_least(1, MAX_STEPS), default=15,
                   help=f"timed runs per r and runtime, 1..{MAX_STEPS} (default: 15)")
    t.add_argument("--threads", type=thread_count, default=2,
                   help=f"threads of every runtime for the timing, {THREADS_HELP} (default: 2)")
    t.add_argument("--runtime", default="eager,onnxruntime,executorch", metavar="LIST",
                   help="eager plus any of onnxruntime, executorch (default: all three)")
    t.add_argument("--work", metavar="DIR", help="export folders (default: tomobile-out/eval-text)")
    t.add_argument("--reuse", action="store_true", help="reuse earlier exports in the work folder")
    t.add_argument("--json", metavar="FILE", help="write the rows as JSON")
    t.add_argument("--markdown", metavar="FILE", help="write the table as Markdown")
    t.set_defaults(handler=cmd_eval_text)
