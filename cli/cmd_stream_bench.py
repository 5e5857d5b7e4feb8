"""`tomobile bench MODEL --stream`: export MODEL split into blocks (or reuse that export), then
measure monolithic against streamed runs without and with prefetch at several memory budgets
(tomobile.runtime.stream_bench), printing a table and the goals, optionally JSON and a plot."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ..graphs.errors import InputError

log = logging.getLogger(__name__)

STREAM_RUNTIMES = ("onnxruntime", "executorch")
DEFAULT_BUDGETS = "25%,50%,100%"
STREAM_THREADS = 2


def add_stream_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stream", action="store_true", help="video denoisers: monolithic against block streaming "
                                                         "(without and with prefetch) at each --budgets; peak RSS "
                                                         "and per-step latency, each mode in a fresh process")
    default = DEFAULT_BUDGETS.replace("%", "%%")  # argparse expands % in help
    p.add_argument("--budgets", default=DEFAULT_BUDGETS, metavar="LIST",
                   help=f"with --stream: memory budgets, sizes (64MB) or %% of the weights (default: {default})")
    p.add_argument("--steps", type=int, default=4, help="with --stream: denoiser calls per mode; the first, which "
                                                        "loads everything, is left out of the median (default: 4)")
    p.add_argument("--rounds", type=int, default=1, help="with --stream: runs of every mode, order rotated (default: 1)")


def stream_threads(text: str | None) -> int:
    """--threads for --stream: one count (default STREAM_THREADS)."""
    from .cmd_bench import parse_threads

    if text is None:
        return STREAM_THREADS
    threads = parse_threads(text)
    if len(threads) != 1:
        raise InputError(f"bench --stream takes one --threads count, got {text!r} (default: {STREAM_THREADS})")
    return threads[0]


def parse_budgets(text: str, total: int) -> list[tuple[int, str]]:
    """'25%,64MB' -> [(bytes, label)]; percentages are of `total` (the variant's part bytes)."""
    from ..runtime.streaming import parse_bytes

    out = []
    for item in (s.strip() for s in text.split(",") if s.strip()):
        if item.endswith("%"):
            try:
                share = float(item[:-1]) / 100
            except ValueError:
                share = -1.0
            if share <= 0:
                raise InputError(f"budget {item!r} is not a positive percentage; give e.g. 25%,50%,100% or 64MB")
            out.append((int(total * share), item))
        else:
            out.append((parse_bytes(item), item))
    if not out:
        raise InputError(f"--budgets names no budget; give e.g. {DEFAULT_BUDGETS}")
    return out


def export_split(model: str, folder: Path, formats: list[str], reuse: bool, progress: bool) -> None:
    """Export MODEL with --split blocks into `folder` (validated), unless `reuse` finds it there.
    `folder` went through check_out_dir; the export is staged and moved into place only when it passed."""
    from ..graphs.config import MergeConfig
    from ..runtime.validate import format_table, validate_dir

    from .model_arg import resolve_model
    from ..export.output import discard, finalize, is_tomobile_export
    from ..export.pipeline import stage_export, write_manifest
    from ..export.registry import ExportOptions
    from ..export.split import list_parts, split_bundle

    if reuse and is_tomobile_export(folder):
        manifest = json.loads((folder / "manifest.json").read_text())
        have = {f for p in manifest.get("split", {}).get("parts", []) for f in p["files"]}
        if manifest.get("model") == model and set(formats) <= have:
            log.info("reusing %s", folder)
            return
    bundle = split_bundle(resolve_model(model, MergeConfig()), "blocks", None)
    staging, manifest = stage_export(bundle, formats, folder, ExportOptions(), progress=progress)
    try:
        manifest["split"] = list_parts(manifest)
        report = validate_dir(staging.path, progress=progress)
        manifest["validation"] = report.to_json()
        write_manifest(staging.path, manifest)
        if not report.passed:
            print(format_table(report).replace(str(staging.path), str(folder)))
            raise InputError(f"the split export for {folder} failed validation (table above); nothing was written")
        finalize(staging)
    except BaseException:
        discard(staging)
        raise


def cmd_stream_bench(args: argparse.Namespace) -> int:
    from ..runtime.stream_bench import plan_modes, run_bench
    from ..runtime.stream_report import format_table, goals, save_plot, to_json
    from ..runtime.streaming import mb, open_split

    from .checks import check_output_file
    from ..export.output import check_out_dir

    runtimes = [r.strip() for r in args.runtime.split(",") if r.strip()]
    bad = [r for r in runtimes if r not in STREAM_RUNTIMES]
    if bad or not runtimes:
        raise InputError(f"--stream runtime {bad[0] if bad else args.runtime!r}; allowed: {', '.join(STREAM_RUNTIMES)}")
    if args.steps < 2 or args.rounds < 1:
        raise InputError("--steps must be at least 2 (the first call loads) and --rounds at least 1")
    for option, value in (("--merge", args.merge), ("--quantize", args.quantize)):
        if value is not None:
            raise InputError(f"{option} does not apply to bench --stream (it times the unmerged fp32 denoiser "
                             "of the split export); leave it out")
    args.threads = stream_threads(args.threads)
    check_output_file(Path(args.json) if args.json else None, "--json")
    check_output_file(Path(args.plot) if args.plot else None, "--plot", (".png",))
    work = Path(args.work) if args.work else Path("tomobile-out") / "bench" / f"{args.model.replace('/', '_')}-split"
    work = check_out_dir(work, force=None, option="--work folder")
    formats = ["onnx" if r == "onnxruntime" else "executorch" for r in runtimes]
    export_split(args.model, work, formats, args.reuse, not args.quiet)
    budgets = {}
    for runtime in runtimes:
        split = open_split(work, runtime)  # sha256 of every part, once, before any timing
        variant = next(iter(split.sequences))  # the unmerged denoiser where there is one
        budgets[runtime] = parse_budgets(args.budgets, split.sequence_bytes(variant))
        low, label = min(budgets[runtime])
        if low < split.largest().size:
            raise InputError(f"budget {label} ({mb(low)}) is below the largest part {split.largest().name} "
                             f"({mb(split.largest().size)}); give budgets of at least that")
    results = run_bench(work, variant, plan_modes(runtimes, budgets), args.steps, args.threads, args.rounds,
                        not args.quiet)
    print(f"{args.model} ({variant}): {args.threads} threads, {args.steps} denoiser calls per mode, "
          f"{args.rounds} round(s); step s = median after the first call")
    print(format_table(results))
    for goal, measured, met in goals(results):
        print(f"  {'met    ' if met else 'NOT met'}  {goal}: {measured}")
    if args.json:
        Path(args.json).write_text(json.dumps(to_json(results, args.model, args.threads, args.steps), indent=2) + "\n")
        print(f"wrote {args.json}")
    if args.plot:
        save_plot(results, Path(args.plot))
        print(f"wrote {args.plot}")
    return 0
