"""`tomobile bench MODEL --stream`: export MODEL split into blocks (or reuse that export), then
measure monolithic against streamed runs without and with prefetch at several memory budgets
(tomobile.runtime.stream_bench), printing a table and the goals, optionally JSON and a plot."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..export.output import check_out_dir
from ..export.pipeline import ValidationFailed, export_model
from ..export.registry import ExportOptions
from ..export.split import split_bundle
from ..graphs.errors import InputError
from ..graphs.numbers import NumberError, parse_names, parse_percent, parse_size
from ..graphs.spec.config import MergeConfig
from ..runtime.manifest import DEFAULT_OUT
from ..runtime.native_engine import build as build_native
from ..runtime.stream_bench import NATIVE, plan_modes, run_bench
from ..runtime.stream_report import format_table, goals, save_plot, to_json
from ..runtime.streaming import RUNTIME_FORMATS, mb, open_split
from ..runtime.validate import format_table as validation_table
from .checks import MAX_STEPS, check_output_file, int_at_least, parse_threads
from .model_arg import resolve_model

STREAM_RUNTIMES = ("onnxruntime", "executorch", "coreai")
DEFAULT_BUDGETS = "25%,50%,100%"
STREAM_THREADS = 2


def add_stream_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stream", action="store_true", help="video denoisers: monolithic against block streaming "
                                                         "(without and with prefetch) at each --budgets; peak RSS "
                                                         "and per-step latency, each mode in a fresh process")
    default = DEFAULT_BUDGETS.replace("%", "%%")  # argparse expands % in help
    p.add_argument("--budgets", default=DEFAULT_BUDGETS, metavar="LIST",
                   help=f"with --stream: memory budgets, sizes (64MB) or %% of the weights (default: {default})")
    p.add_argument("--steps", type=int_at_least(1, MAX_STEPS), default=4,
                   help=f"with --stream: denoiser calls per mode, 1..{MAX_STEPS}; the first, which loads everything, "
                        "is left out of the median (default: 4)")
    p.add_argument("--rounds", type=int_at_least(1, MAX_STEPS), default=1,
                   help=f"with --stream: runs of every mode, order rotated, 1..{MAX_STEPS} (default: 1)")
    p.add_argument("--native", action="store_true", help="with --stream: also run every ExecuTorch mode in the native "
                                                         "engine (tomobile-native, C++, no Python), built first")


def stream_threads(text: str | None) -> int:
    """--threads for --stream: one count (default STREAM_THREADS)."""
    if text is None:
        return STREAM_THREADS
    threads = parse_threads(text)
    if len(threads) != 1:
        raise InputError(f"bench --stream takes one --threads count, got {text!r} (default: {STREAM_THREADS})")
    return threads[0]


def parse_budgets(text: str, total: int) -> list[tuple[int, str]]:
    """'25%,64MB' -> [(bytes, label)]; percentages are of `total` (the variant's part bytes). Each
    budget is a finite positive byte count (graphs/numbers.py); an empty item or a budget given
    twice is refused."""
    items = [s.strip() for s in text.split(",")]
    if not any(items):
        raise InputError(f"--budgets names no budget; give e.g. {DEFAULT_BUDGETS}")
    if not all(items):
        raise InputError(f"--budgets {text!r} has an empty item; give e.g. {DEFAULT_BUDGETS} or 64MB")
    out = []
    for item in items:
        try:
            share = parse_percent(item, "budget") if item.endswith("%") else None
            size = max(1, int(total * share)) if share is not None else parse_size(item, "budget")
        except NumberError as err:
            raise InputError(f"--budgets: {err}; give e.g. {DEFAULT_BUDGETS} or 64MB") from None
        if item in {label for _, label in out}:
            raise InputError(f"--budgets {text!r} lists {item} twice; give each budget once")
        out.append((size, item))
    return out


def export_split(model: str, folder: Path, formats: list[str], reuse: bool, progress: bool) -> None:
    """MODEL split into blocks, exported into `folder` (from check_out_dir) and validated, unless
    `reuse` finds that export there; a validation failure prints the table and writes nothing."""
    bundle = split_bundle(resolve_model(model, MergeConfig()), "blocks", None)
    try:
        export_model(bundle, formats, folder, ExportOptions(), require_pass=True, reuse=reuse, progress=progress)
    except ValidationFailed as failed:
        print(validation_table(failed.report))
        raise


def native_binary(asked: bool) -> Path | None:
    """--native: the built tomobile-native (built now if needed; NativeBuildError if it cannot be)."""
    return build_native() if asked else None


def cmd_stream_bench(args: argparse.Namespace) -> int:
    runtimes = parse_names(args.runtime, "--runtime (with --stream)", STREAM_RUNTIMES, "runtimes")
    native = native_binary(args.native)
    if native is not None:
        runtimes.append(NATIVE)
    if args.steps < 2 or args.rounds < 1:
        raise InputError("--steps must be at least 2 (the first call loads) and --rounds at least 1")
    for option, value in (("--merge", args.merge), ("--quantize", args.quantize)):
        if value is not None:
            raise InputError(f"{option} does not apply to bench --stream (it times the unmerged fp32 denoiser "
                             "of the split export); leave it out")
    threads = stream_threads(args.threads)
    parse_budgets(args.budgets, 1)  # every spelling checked before the export (sizes per variant come after it)
    check_output_file(Path(args.json) if args.json else None, "--json")
    check_output_file(Path(args.plot) if args.plot else None, "--plot", (".png",))
    work = Path(args.work) if args.work else DEFAULT_OUT / "bench" / f"{args.model.replace('/', '_')}-split"
    work = check_out_dir(work, force=None, option="--work folder")
    formats = list(dict.fromkeys(RUNTIME_FORMATS.get(r, "executorch") for r in runtimes))  # native: executorch
    export_split(args.model, work, formats, args.reuse, not args.quiet)
    budgets = {}
    for runtime in runtimes:
        split = open_split(work, "executorch" if runtime == NATIVE else runtime)  # every part's sha256, before timing
        variant = next(iter(split.sequences))  # the unmerged denoiser where there is one
        budgets[runtime] = parse_budgets(args.budgets, split.sequence_bytes(variant))
        low, label = min(budgets[runtime])
        if low < split.largest().size:
            raise InputError(f"budget {label} ({mb(low)}) is below the largest part {split.largest().name} "
                             f"({mb(split.largest().size)}); give budgets of at least that")
    results = run_bench(work, variant, plan_modes(runtimes, budgets), args.steps, threads, args.rounds,
                        not args.quiet, native)
    print(f"{args.model} ({variant}): {threads} threads, {args.steps} denoiser calls per mode, "
          f"{args.rounds} round(s); step s = median after the first call")
    print(format_table(results))
    for goal, measured, met in goals(results):
        print(f"  {'met    ' if met else 'NOT met'}  {goal}: {measured}")
    if args.json:
        Path(args.json).write_text(json.dumps(to_json(results, args.model, threads, args.steps), indent=2) + "\n")
        print(f"wrote {args.json}")
    if args.plot:
        save_plot(results, Path(args.plot))
        print(f"wrote {args.plot}")
    return 0
