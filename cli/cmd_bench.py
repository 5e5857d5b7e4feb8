"""`tomobile bench MODEL --merge "SPEC;SPEC" --runtime onnxruntime,executorch`: merged against
unmerged and against the token-drop oracle, in one run. Exports every variant (or reuses an
earlier export of the same spec): the unmerged model, each SPEC, and for each SPEC of a method with
one its `drop:` twin (same plan and shapes, no merge work: the speed any merge could at best reach).
Then times them round-robin per runtime and thread count (tomobile.runtime.bench) and, in eager
PyTorch, against the original-style argsort + scatter_reduce merge (tomobile.runtime.reference_merge)."""

from __future__ import annotations

import argparse
import functools
import gc
import json
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

from ..export.onnx_format import merge_node_names, quantize_int8
from ..export.output import check_out_dir
from ..export.pipeline import export_model
from ..export.registry import ExportOptions
from ..graphs.errors import InputError
from ..graphs.methods.tome import Schedule
from ..graphs.models.hf_models import merge_plan
from ..graphs.models.sd_unet import MAX_SIZE as SD_MAX_SIZE
from ..graphs.models.video_transformers import MERGED, PLAIN
from ..graphs.numbers import parse_names
from ..graphs.spec.config import MergeConfig, spec_help
from ..runtime.bench import OWN_THREADS, RUNTIMES, Variant, bench_runtime, load_inputs, ort_merge_share
from ..runtime.bench_report import BenchReport, format_table, save_plot, verdicts
from ..runtime.flops import flop_ratio, module_flops
from ..runtime.manifest import DEFAULT_OUT
from ..runtime.reference_merge import REFERENCES, compare_eager
from .checks import MAX_STEPS, THREADS_HELP, check_output_file, int_at_least, note, parse_threads, pixel_size
from .cmd_stream_bench import add_stream_args, cmd_stream_bench
from .model_arg import check_trace_source, diffusers_options, resolve_model, source_folder, unused_merge_options

DEFAULT_THREADS = "1,2"
BENCH_RUNTIMES = tuple(RUNTIMES)
# Sub-folder of a variant holding an extra ExecuTorch export, by runtime.
_ET_EXTRA = {"executorch-fp16": ("fp16", "fp16", None), "executorch-int8": ("int8", "fp32", "int8")}


def parse_specs(text: str, oracle: bool = True) -> list[MergeConfig]:
    """'tome:r=8;tome:r=16' -> [unmerged, r=8, r=16, drop r=8, drop r=16]: the unmerged baseline
    first, then the specs, then (with `oracle`) the drop twin of every spec whose method has one
    (same token counts, no merge work)."""
    configs = [MergeConfig()]
    for spec in (s.strip() for s in text.split(";")):
        if spec:
            config = MergeConfig.parse(spec)
            if config.enabled and config not in configs:
                configs.append(config)
    if len(configs) == 1:
        raise InputError(f"--merge names no merging spec; give one or more of: {spec_help()}, separated by ';'")
    if oracle:
        twins = [c.oracle() for c in configs if c.enabled]
        configs += [c for c in twins if c is not None and c not in configs]
    return configs


def parse_runtimes(text: str) -> list[str]:
    """--runtime: names from BENCH_RUNTIMES, no empty item, none twice (the list rule)."""
    return parse_names(text, "--runtime", BENCH_RUNTIMES, "runtimes")


def label(config: MergeConfig) -> str:
    """'r=0' unmerged, 'r=16' / 'drop r=16' for constant ToMe and its twin, otherwise the SPEC."""
    if not config.enabled:
        return "r=0"
    tome = config.params.params if config.drops else config.params
    if (config.method == "tome" or config.drops and config.params.like == "tome") and \
            tome.schedule is Schedule.CONSTANT and tome.prop_attn and not tome.trace_source:
        return f"drop r={tome.r[0]}" if config.drops else f"r={tome.r[0]}"
    return config.describe()


def _dims(wrapper) -> tuple[int, int]:
    cfg = wrapper.model.config
    cfg = getattr(cfg, "vision_config", cfg)
    return cfg.hidden_size, cfg.intermediate_size


def _variant_folder(work: Path, config: MergeConfig) -> Path:
    return work / label(config).replace(" ", "_").replace(":", "_").replace(",", "_").replace("=", "")


def _export_variant(bundle, folder: Path, runtimes: list[str], reuse: bool, progress: bool) -> None:
    """Export `bundle` into `folder` with every file `runtimes` run (fp16/int8 .pte in sub-folders).
    Not validated here: bench times the files; `tomobile validate` checks them."""
    formats = sorted({RUNTIMES[r].fmt for r in runtimes if "/" not in RUNTIMES[r].artifact}, reverse=True)
    export_model(bundle, formats, folder, ExportOptions(), validate=False, reuse=reuse, progress=progress)
    if "onnxruntime-int8" in runtimes and not (reuse and (folder / "model.int8.onnx").exists()):
        quantize_int8(folder / "model.onnx", folder / "model.int8.onnx")
    for runtime in runtimes:
        if runtime in _ET_EXTRA:
            sub, precision, quantize = _ET_EXTRA[runtime]
            export_model(bundle, ["executorch"], folder / sub, ExportOptions(precision=precision, quantize=quantize),
                         validate=False, reuse=reuse, progress=progress)


def _check_outputs(args: argparse.Namespace) -> list[int]:
    """The thread counts; --runs, --eager-runs and the output files checked."""
    if args.runs < 1 or args.eager_runs < 1 or args.count_calls < 1:
        raise InputError("--runs, --eager-runs and --count-calls must be at least 1")
    check_output_file(Path(args.json) if args.json else None, "--json")
    check_output_file(Path(args.plot) if args.plot else None, "--plot", (".png",))
    return parse_threads(DEFAULT_THREADS if args.threads is None else args.threads)


def _prepare(args: argparse.Namespace, configs: list[MergeConfig]) -> list[tuple[MergeConfig, Callable, Path]]:
    """Every spec built on the model and every variant folder checked, before any export starts.
    Each bundle is released after its check and rebuilt for its export: one model in memory at a
    time (a seeded wan21-t2v-1.3b holds 5.7 GB; its three variants at once would not fit 24 GB)."""
    work = Path(args.work) if args.work else DEFAULT_OUT / "bench" / args.model.replace("/", "_")
    source = source_folder(args.model)
    prepared = []
    for config in configs:
        folder = check_out_dir(_variant_folder(work, config), keep=(source,) if source else (), force=None,
                               option="--work folder")
        build = functools.partial(_timed_bundle, args.model, config, bench_options(args))
        check_trace_source(config, build())
        gc.collect()
        unused = unused_merge_options(config, batch=1)  # bench times batch 1
        if unused:
            note(f"{config.describe()}: {unused}")
        prepared.append((config, build, folder))
    return prepared


def _timed_bundle(model: str, config: MergeConfig, options: dict):
    return timed_part(resolve_model(model, config, options), config)


def cmd_bench(args: argparse.Namespace) -> int:
    if args.stream:
        return cmd_stream_bench(args)
    if args.native:
        raise InputError("--native runs the native engine's rows of the stream bench; it applies only with --stream "
                         "(bench MODEL --stream --native), not to a merge bench")
    if args.merge is None:
        raise InputError(f"bench needs --merge SPEC[;SPEC...] ({spec_help()}), or --stream for a video denoiser")
    threads = _check_outputs(args)
    configs = parse_specs(args.merge, oracle=not args.no_oracle)
    runtimes = parse_runtimes(args.runtime)
    if args.quantize == "int8":
        runtimes += [f"{r}-int8" for r in ("onnxruntime", "executorch") if r in runtimes and f"{r}-int8" not in runtimes]
    variants, bundles = [], {}
    prepared = _prepare(args, configs)
    while prepared:
        config, build, folder = prepared.pop(0)
        bundle = build()
        name = label(config)
        _export_variant(bundle, folder, runtimes, args.reuse, not args.quiet)
        (part, wrapper), = bundle.parts.items()
        twin = label(config.oracle()) if config.enabled and config.oracle() else None
        r, flops = _plan_figures(wrapper)
        variants.append(Variant(name, r, folder, flops, config.method, twin if twin in map(label, configs) else None,
                                part))
        if _has_plan(wrapper):  # kept for the merge share and the eager rows (encoders only)
            bundles[name] = wrapper
        del bundle, wrapper  # a UNet's weights (sd15-unet: 3.4 GB each) go before the runtimes load theirs
        gc.collect()
    _unet_flop_ratios(variants)
    report = BenchReport(args.model, threads, args.runs)
    for runtime in runtimes:
        for n in threads[:1] if runtime in OWN_THREADS else threads:
            counting = args.count_calls if args.count and n == threads[0] else 0  # counts hold at 1 thread
            rows = bench_runtime(runtime, variants, args.runs, n, progress=not args.quiet, count_calls=counting)
            if runtime.startswith("onnxruntime"):
                for row, v in zip(rows, variants, strict=True):
                    if v.label in bundles and v.method not in ("none", "drop") and \
                            any(merge_plan(bundles[v.label].model).r):
                        path = v.folder / ("model.int8.onnx" if runtime.endswith("int8") else "model.onnx")
                        row.merge_share = ort_merge_share(path, load_inputs(v.folder), merge_node_names(bundles[v.label]), n)
            report.rows.extend(rows)
    if not args.no_eager:
        report.eager = _eager_rows([v for v in variants if has_reference(v.method)], bundles, args, threads[-1])
    _write_outputs(report, args)
    return 0


def bench_options(args: argparse.Namespace) -> dict:
    """The shape options of the model kind: --size for a UNet; --size and --frames for a video transformer."""
    return diffusers_options(args.size, False, args.frames)


def timed_part(bundle, config: MergeConfig):
    """The bundle with only the part a variant times. A video transformer's bundle holds the plain
    transformer and, for tdtm or its drop twin, the merged one on the same weights: the merged one
    is timed (the plain one is the `none` variant's), and only it is exported."""
    if len(bundle.parts) == 1:
        return bundle
    name = MERGED if config.enabled else PLAIN
    manifest = {**bundle.manifest, "variants": {name: bundle.manifest["variants"][name]}}
    return replace(bundle, parts={name: bundle.parts[name]}, manifest=manifest)


def _has_plan(wrapper) -> bool:
    """An encoder model with a MergePlan (not a diffusers UNet, whose tomesd plan is per block)."""
    return hasattr(wrapper, "model")


def _plan_figures(wrapper) -> tuple[float, float]:
    """(r of the first layer, analytic FLOP ratio) of an encoder variant; for a UNet (0, its FLOPs),
    turned into ratios by _unet_flop_ratios once every variant is built."""
    if not _has_plan(wrapper):
        return 0, module_flops(wrapper, wrapper.example_inputs())
    plan = merge_plan(wrapper.model)
    width, hidden = _dims(wrapper)
    return (plan.r[0], flop_ratio(plan.tokens, width, hidden)) if plan else (0, 1.0)


def _unet_flop_ratios(variants: list[Variant]) -> None:
    """A UNet variant's FLOP ratio: the unmerged UNet's FLOPs over its drop twin's (the token counts
    without the merge ops, as for encoders), or over its own where it has no twin in the run."""
    if variants[0].part == "model":
        return
    flops = {v.label: v.flop_ratio for v in variants}
    for i, v in enumerate(variants):
        variants[i] = replace(v, flop_ratio=flops[variants[0].label] / flops[v.oracle or v.label])


def has_reference(method: str) -> bool:
    return method in REFERENCES


def _eager_rows(variants, bundles, args, threads: int) -> list[dict]:
    rows = []
    for v in variants:
        wrapper = bundles[v.label]
        cmp = compare_eager(v.label, wrapper, wrapper.example_inputs(seed=0), args.eager_runs, threads,
                            progress=not args.quiet, method=v.method)
        rows.append({**asdict(cmp), "reference_over_static": cmp.ratio})
    return rows


def _write_outputs(report, args) -> None:
    apart = sorted({f"{r.runtime} x{r.threads}" for r in report.rows if not r.round_robin})
    print(f"{report.model}: threads {', '.join(map(str, report.threads))}, median of {report.runs} "
          f"{'runs' if apart else 'round-robin runs'}; merge overhead = median(tome) / median(drop) - 1, IQR of the "
          "same ratio run by run")
    if apart:
        print(f"  {', '.join(apart)}: the variants did not fit in memory together and were timed one after another, "
              "not round-robin")
    print(format_table(report))
    for line in verdicts(report):
        print(f"  {line}")
    if report.eager:
        print("\neager PyTorch, same r: static graph vs argsort + scatter_reduce reference")
        for row in report.eager:
            print(f"  {row['label']:>6}  static {row['static_ms']:.1f} ms  reference {row['reference_ms']:.1f} ms  "
                  f"reference/static {row['reference_over_static']:.2f}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report.to_json(), indent=2) + "\n")
        print(f"wrote {args.json}")
    if args.plot:
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        save_plot(report, Path(args.plot))
        print(f"wrote {args.plot}")


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="latency of merged against unmerged exports and the token-drop oracle",
                       description="Export MODEL unmerged, once per SPEC and once per SPEC's drop: twin (the "
                                   "token-drop oracle: same plan and shapes, no merge work; a baseline for measuring, "
                                   "not a method), then time every variant round-robin per runtime and thread count "
                                   "(one after another where they do not fit in memory together).")
    p.add_argument("model", metavar="MODEL", help="a built-in name or a local Hugging Face model folder")
    p.add_argument("--merge", metavar="SPEC[;SPEC...]", help=f"merge specs separated by ';': {spec_help()}")
    p.add_argument("--runtime", default="onnxruntime,executorch", metavar="LIST",
                   help=f"comma-separated from: {', '.join(BENCH_RUNTIMES)} (default: onnxruntime,executorch)")
    p.add_argument("--runs", type=int_at_least(1, MAX_STEPS), default=15,
                   help=f"timed runs per variant and runtime, 1..{MAX_STEPS} (default: 15)")
    p.add_argument("--eager-runs", type=int_at_least(1, MAX_STEPS), default=9,
                   help=f"timed eager runs per variant, 1..{MAX_STEPS} (default: 9)")
    p.add_argument("--threads", metavar="LIST",
                   help=f"intra-op thread counts, each {THREADS_HELP}, each timed round-robin on its own (default: "
                        f"{DEFAULT_THREADS}; with --stream one count, default 2)")
    p.add_argument("--count", action="store_true",
                   help="also count instructions per call under valgrind's callgrind, at 1 thread, through the Python "
                        "bindings and (ExecuTorch) the native engine: repeatable whatever else the machine does, "
                        "but 50-2000x slower than a run, so for small graphs")
    p.add_argument("--count-calls", type=int_at_least(1), default=1, metavar="N",
                   help="calls counted per variant with --count, after an uncounted warm-up (default: 1; the count "
                        "repeats call to call)")
    p.add_argument("--quantize", choices=("int8",), help="also time the int8 models: ONNX Runtime dynamic int8 "
                                                         "and ExecuTorch PT2E static int8, for the runtimes asked")
    p.add_argument("--no-oracle", action="store_true", help="skip the drop: twins (no oracle speedup, no overhead)")
    p.add_argument("--size", type=pixel_size, metavar="HxW",
                   help=f"Stable Diffusion UNets: image size in pixels, square, a multiple of 8 from 8 to {SD_MAX_SIZE} "
                        "(latent = PX/8; default: the config's sample_size x 8). Wan / LTX-Video transformers: video "
                        "frame size HxW, as for export (default: the built-in's phone-sized default)")
    p.add_argument("--frames", type=int_at_least(1), metavar="N",
                   help="Wan / LTX-Video transformers: video frames, as for export (4k+1 for Wan, 8k+1 for LTX-Video)")
    p.add_argument("--work", metavar="DIR", help="export folders go here (default: tomobile-out/bench/MODEL)")
    p.add_argument("--reuse", action="store_true", help="reuse an earlier export of the same spec in the work folder")
    p.add_argument("--no-eager", action="store_true", help="skip the eager reference-vs-static comparison")
    p.add_argument("--json", metavar="FILE", help="write median_ms, speedup, flop_ratio, oracle_speedup, merge_overhead "
                                                  "per runtime, thread count and SPEC")
    p.add_argument("--plot", metavar="FILE.png", help="speedup against r, ToMe and its drop oracle, with the FLOP-ratio line")
    add_stream_args(p)
    p.set_defaults(handler=cmd_bench)
