"""`tomobile bench MODEL --merge "SPEC;SPEC" --runtime onnxruntime,executorch`: merged against
unmerged, in one run. Exports every variant (or reuses an earlier export of the same spec),
then times them round-robin (tomobile.runtime.bench) and in eager PyTorch against the
original-style argsort + scatter_reduce merge (tomobile.runtime.reference_merge)."""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict
from pathlib import Path

from tomobile.graphs.config import SPEC_HELP, MergeConfig, Schedule

from .cmd_stream_bench import add_stream_args

log = logging.getLogger(__name__)

BENCH_RUNTIMES = ("onnxruntime", "onnxruntime-int8", "executorch")


def parse_specs(text: str) -> list[MergeConfig]:
    """'tome:r=8;tome:r=16' -> [unmerged, r=8, r=16]; the unmerged baseline is always first."""
    configs = [MergeConfig()]
    for spec in (s.strip() for s in text.split(";")):
        if spec:
            config = MergeConfig.parse(spec)
            if config.enabled and config not in configs:
                configs.append(config)
    if len(configs) == 1:
        raise ValueError(f"--merge names no merging spec; give one or more of: {SPEC_HELP}, separated by ';'")
    return configs


def parse_runtimes(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in BENCH_RUNTIMES]
    if bad or not names:
        raise ValueError(f"unknown runtime {bad[0] if bad else text!r}; runtimes: {', '.join(BENCH_RUNTIMES)}")
    return list(dict.fromkeys(names))


def label(config: MergeConfig) -> str:
    if not config.enabled:
        return "r=0"
    if config.schedule is Schedule.CONSTANT and config.prop_attn and not config.trace_source:
        return f"r={config.r[0]}"
    return config.describe()


def _dims(wrapper) -> tuple[int, int]:
    cfg = wrapper.model.config
    cfg = getattr(cfg, "vision_config", cfg)
    return cfg.hidden_size, cfg.intermediate_size


def merge_node_names(wrapper) -> set[str]:
    """ONNX node names of the merge ops: the dynamo exporter names a node 'node_' + its fx name,
    and the fx nodes the merge adds carry graphs.layers.MERGE_ANNOTATION when meta is preserved."""
    import torch
    from torch.fx.traceback import preserve_node_meta

    from tomobile.graphs.layers import MERGE_ANNOTATION

    with torch.no_grad(), preserve_node_meta():
        program = torch.export.export(wrapper, wrapper.example_inputs(seed=0), strict=False)
    key, value = next(iter(MERGE_ANNOTATION.items()))
    return {f"node_{n.name}" for n in program.graph.nodes if (n.meta.get("custom") or {}).get(key) == value}


def _variant_folder(work: Path, config: MergeConfig) -> Path:
    return work / label(config).replace(":", "_").replace(",", "_").replace("=", "")


def _reusable(folder: Path, config: MergeConfig, formats: list[str]) -> bool:
    from .output import is_tomobile_export

    names = {"onnx": "model.onnx", "executorch": "model.pte"}
    return (is_tomobile_export(folder) and all((folder / names[f]).exists() for f in formats)
            and json.loads((folder / "manifest.json").read_text()).get("merge_spec") == config.describe())


def _export_variant(bundle, config: MergeConfig, folder: Path, formats: list[str], quantize: bool,
                    reuse: bool, progress: bool) -> None:
    """Export `bundle` into `folder` (an absolute path check_out_dir accepted) unless reusable."""
    from .onnx_format import quantize_int8
    from .output import finalize
    from .pipeline import stage_export
    from .registry import ExportOptions

    if reuse and _reusable(folder, config, formats):
        log.info("reusing %s", folder)
    else:
        staging, _ = stage_export(bundle, formats, folder, ExportOptions(), progress=progress)
        finalize(staging)
    if quantize and not (reuse and (folder / "model.int8.onnx").exists()):
        quantize_int8(folder / "model.onnx", folder / "model.int8.onnx")


def _check_outputs(args: argparse.Namespace) -> None:
    from .checks import check_output_file

    if args.runs < 1 or args.eager_runs < 1 or args.threads < 1:
        raise ValueError("--runs, --eager-runs and --threads must be at least 1")
    check_output_file(Path(args.json) if args.json else None, "--json")
    check_output_file(Path(args.plot) if args.plot else None, "--plot", (".png",))


def _prepare(args: argparse.Namespace, configs: list[MergeConfig]) -> list[tuple[MergeConfig, object, Path]]:
    """Every spec built on the model and every variant folder checked, before any export starts."""
    from .cli import check_trace_source, resolve_model, source_folder
    from .output import check_out_dir

    work = Path(args.work) if args.work else Path("tomobile-out") / "bench" / args.model.replace("/", "_")
    source = source_folder(args.model)
    prepared = []
    for config in configs:
        folder = check_out_dir(_variant_folder(work, config), keep=(source,) if source else (), force=None,
                              option="--work folder")
        bundle = resolve_model(args.model, config)
        check_trace_source(config, bundle)
        prepared.append((config, bundle, folder))
    return prepared


def cmd_bench(args: argparse.Namespace) -> int:
    from tomobile.graphs.hf_models import merge_plan
    from tomobile.runtime.bench import BenchReport, Variant, bench_runtime, load_inputs, ort_merge_share
    from tomobile.runtime.flops import flop_ratio

    if args.stream:
        from .cmd_stream_bench import cmd_stream_bench

        return cmd_stream_bench(args)
    if args.merge is None:
        raise ValueError(f"bench needs --merge SPEC[;SPEC...] ({SPEC_HELP}), or --stream for a video denoiser")
    _check_outputs(args)
    configs = parse_specs(args.merge)
    runtimes = parse_runtimes(args.runtime)
    if args.quantize == "int8" and "onnxruntime-int8" not in runtimes:
        runtimes.append("onnxruntime-int8")
    formats = sorted({"onnx" if r.startswith("onnx") else "executorch" for r in runtimes}, reverse=True)
    variants, bundles = [], {}
    for config, bundle, folder in _prepare(args, configs):
        name = label(config)
        _export_variant(bundle, config, folder, formats, "onnxruntime-int8" in runtimes, args.reuse, not args.quiet)
        wrapper = bundle.parts["model"]
        plan = merge_plan(wrapper.model)
        width, hidden = _dims(wrapper)
        variants.append(Variant(name, plan.r[0] if plan else 0, folder, flop_ratio(plan.tokens, width, hidden)))
        bundles[name] = wrapper
    report = BenchReport(args.model, args.threads, args.runs)
    for runtime in runtimes:
        rows = bench_runtime(runtime, variants, args.runs, args.threads, progress=not args.quiet)
        if runtime.startswith("onnxruntime"):
            for row, v in zip(rows, variants, strict=True):
                path = v.folder / ("model.int8.onnx" if runtime.endswith("int8") else "model.onnx")
                names = merge_node_names(bundles[v.label]) if v.r else set()
                row.merge_share = ort_merge_share(path, load_inputs(v.folder), names, args.threads) if v.r else 0.0
        report.rows.extend(rows)
    if not args.no_eager:
        report.eager = _eager_rows(variants, bundles, args)
    _write_outputs(report, args)
    return 0


def _eager_rows(variants, bundles, args) -> list[dict]:
    from tomobile.runtime.reference_merge import compare_eager

    rows = []
    for v in variants[1:]:
        wrapper = bundles[v.label]
        cmp = compare_eager(v.label, wrapper, wrapper.example_inputs(seed=0), args.eager_runs, args.threads,
                            progress=not args.quiet)
        rows.append({**asdict(cmp), "reference_over_static": cmp.ratio})
    return rows


def _write_outputs(report, args) -> None:
    from tomobile.runtime.bench import format_table, save_plot

    print(f"{report.model}: {report.threads} threads, median of {report.runs} round-robin runs")
    print(format_table(report))
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
    p = sub.add_parser("bench", help="latency of merged against unmerged exports on ONNX Runtime and ExecuTorch",
                       description="Export MODEL unmerged and once per SPEC, then time every variant round-robin.")
    p.add_argument("model", metavar="MODEL", help="a built-in name or a local Hugging Face model folder")
    p.add_argument("--merge", metavar="SPEC[;SPEC...]", help=f"merge specs separated by ';': {SPEC_HELP}")
    p.add_argument("--runtime", default="onnxruntime,executorch", metavar="LIST",
                   help=f"comma-separated from: {', '.join(BENCH_RUNTIMES)} (default: onnxruntime,executorch)")
    p.add_argument("--runs", type=int, default=15, help="timed runs per variant and runtime (default: 15)")
    p.add_argument("--eager-runs", type=int, default=9, help="timed eager runs per variant (default: 9)")
    p.add_argument("--threads", type=int, default=2, help="intra-op threads for every runtime (default: 2)")
    p.add_argument("--quantize", choices=("int8",), help="also time the dynamically quantised ONNX model")
    p.add_argument("--work", metavar="DIR", help="export folders go here (default: tomobile-out/bench/MODEL)")
    p.add_argument("--reuse", action="store_true", help="reuse an earlier export of the same spec in the work folder")
    p.add_argument("--no-eager", action="store_true", help="skip the eager reference-vs-static comparison")
    p.add_argument("--json", metavar="FILE", help="write median_ms, speedup, flop_ratio, efficiency per runtime and SPEC")
    p.add_argument("--plot", metavar="FILE.png", help="speedup against r with the FLOP-ratio line")
    add_stream_args(p)
    p.set_defaults(handler=cmd_bench)
