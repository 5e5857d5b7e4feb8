"""Latency of exported artifacts, merged against unmerged, on the runtimes that run on Linux.

Every variant of one model (the unmerged export and one export per merge SPEC) is loaded at
once and timed round-robin: run i of every variant before run i + 1 of any, the starting variant
rotating, so a noisy neighbour slows all variants alike. The report holds min/median/max per
variant and runtime, the speedup against the unmerged variant, the analytic FLOP ratio
(flops.py), efficiency = speedup / FLOP ratio, ONNX Runtime's profiler share of the merge ops,
and ExecuTorch's delegate partitions and the operators left on portable kernels.
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .artifacts import ExecuTorchRunner, OnnxRunner

log = logging.getLogger(__name__)

# Runtime name -> (manifest format, artifact file). The int8 row runs the dynamically quantised
# ONNX file that `--quantize int8` writes beside model.onnx.
RUNTIMES = {
    "onnxruntime": ("onnx", "model.onnx"),
    "onnxruntime-int8": ("onnx", "model.int8.onnx"),
    "executorch": ("executorch", "model.pte"),
}


@dataclass(frozen=True)
class Variant:
    """One exported model folder: label ('r=0', 'r=16', ...), r per layer (first layer's), FLOP ratio."""

    label: str
    r: int
    folder: Path
    flop_ratio: float


@dataclass
class BenchRow:
    runtime: str
    label: str
    r: int
    median_ms: float
    min_ms: float
    max_ms: float
    speedup: float
    flop_ratio: float
    efficiency: float
    merge_share: float | None = None  # ONNX Runtime: share of node time in merge ops
    partitions: int | None = None  # ExecuTorch: XNNPACK delegate partitions
    portable_ops: list[str] = field(default_factory=list)  # ExecuTorch: operators outside the delegate


@dataclass
class BenchReport:
    model: str
    threads: int
    runs: int
    rows: list[BenchRow] = field(default_factory=list)
    eager: list[dict] = field(default_factory=list)  # reference-vs-static rows (reference_merge.py)

    def to_json(self) -> dict:
        out: dict = {"model": self.model, "threads": self.threads, "runs": self.runs, "runtimes": {}}
        for row in self.rows:
            out["runtimes"].setdefault(row.runtime, {})[row.label] = asdict(row)
        out["eager_merge"] = self.eager
        return out


def round_robin(fns: dict[str, Callable[[], object]], runs: int, warmup: int = 2,
                progress: bool = True, desc: str = "bench") -> dict[str, list[float]]:
    """Seconds per call of every fn, interleaved: each round calls every fn once, rotating the start."""
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    times: dict[str, list[float]] = {n: [] for n in names}
    for i in tqdm(range(runs), desc=desc, unit="round", disable=not progress):
        for name in names[i % len(names):] + names[: i % len(names)]:
            start = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - start)
    return times


def load_inputs(folder: Path, part: str = "model") -> list[np.ndarray]:
    """The seeded inputs the export wrote as test vectors, in input order."""
    data = np.load(folder / "test_vectors" / f"{part}.npz")
    return [data[k] for k in data.files if k.startswith("seeded.input.")]


def _runner(runtime: str, path: Path, threads: int):
    if runtime.startswith("onnxruntime"):
        return OnnxRunner(path, threads=threads)
    set_executorch_threads(threads)
    return ExecuTorchRunner(path)


def set_executorch_threads(threads: int) -> None:
    from executorch.extension.pybindings import portable_lib

    if portable_lib._threadpool_get_thread_count() != threads:
        portable_lib._unsafe_reset_threadpool(threads)


def _artifact_info(folder: Path, fmt: str) -> dict:
    manifest = json.loads((folder / "manifest.json").read_text())
    return next((a for a in manifest.get("artifacts", []) if a["format"] == fmt and a["part"] == "model"), {})


def bench_runtime(runtime: str, variants: list[Variant], runs: int, threads: int,
                  progress: bool = True) -> list[BenchRow]:
    """Round-robin latency of every variant on one runtime; variants[0] is the unmerged baseline."""
    fmt, name = RUNTIMES[runtime]
    missing = [str(v.folder / name) for v in variants if not (v.folder / name).exists()]
    if missing:
        raise FileNotFoundError(f"{missing[0]} is missing: export it first")
    runners = {v.label: (_runner(runtime, v.folder / name, threads), load_inputs(v.folder)) for v in variants}
    fns = {label: (lambda r=r, x=x: r.run(x)) for label, (r, x) in runners.items()}
    times = round_robin(fns, runs, progress=progress, desc=runtime)
    base = statistics.median(times[variants[0].label])
    rows = []
    for v in variants:
        t = times[v.label]
        med = statistics.median(t)
        row = BenchRow(runtime, v.label, v.r, med * 1e3, min(t) * 1e3, max(t) * 1e3, base / med,
                       v.flop_ratio, base / med / v.flop_ratio)
        if fmt == "executorch":
            info = _artifact_info(v.folder, "executorch")
            row.partitions = info.get("partitions")
            row.portable_ops = info.get("operators", [])
        rows.append(row)
    return rows


def ort_merge_share(onnx_path: Path, inputs: list[np.ndarray], merge_nodes: set[str], threads: int,
                    runs: int = 10) -> float:
    """Share of ONNX Runtime's node time spent in `merge_nodes` (ONNX node names), from its profiler.

    Nodes that ORT's optimizer fused get new names and count as non-merge; the share is a lower
    bound when a merge op was fused into a neighbour.
    """
    runner = OnnxRunner(onnx_path, threads=threads, profile=True)
    for _ in range(runs + 2):
        runner.run(inputs)
    profile = Path(runner.end_profiling())
    try:
        events = json.loads(profile.read_text())
    finally:
        profile.unlink(missing_ok=True)
    total = merged = 0.0
    for ev in events:
        if ev.get("cat") != "Node" or not ev.get("name", "").endswith("_kernel_time"):
            continue
        dur = float(ev.get("dur", 0))
        total += dur
        if ev["name"].removesuffix("_kernel_time") in merge_nodes:
            merged += dur
    return merged / total if total > 0 else 0.0


def format_table(report: BenchReport) -> str:
    header = ("runtime", "variant", "median ms", "min ms", "max ms", "speedup", "FLOP ratio", "efficiency",
              "merge share", "partitions", "portable ops")
    rows = [header]
    for r in report.rows:
        share = "-" if r.merge_share is None else f"{100 * r.merge_share:.1f}%"
        parts = "-" if r.partitions is None else str(r.partitions)
        rows.append((r.runtime, r.label, f"{r.median_ms:.1f}", f"{r.min_ms:.1f}", f"{r.max_ms:.1f}",
                     f"{r.speedup:.2f}", f"{r.flop_ratio:.2f}", f"{r.efficiency:.2f}", share, parts,
                     ", ".join(op.removeprefix("aten::") for op in r.portable_ops) or "-"))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def save_plot(report: BenchReport, path: Path) -> None:
    """Speedup against r per runtime, with the analytic FLOP-ratio line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    runtimes = list(dict.fromkeys(r.runtime for r in report.rows))
    for runtime in runtimes:
        rows = sorted((r for r in report.rows if r.runtime == runtime), key=lambda r: r.r)
        ax.plot([r.r for r in rows], [r.speedup for r in rows], "o-", label=runtime)
    rows = sorted({(r.r, r.flop_ratio) for r in report.rows})
    ax.plot([r for r, _ in rows], [f for _, f in rows], "k--", label="FLOP ratio")
    ax.set_xlabel("r (tokens merged per layer)")
    ax.set_ylabel("speedup vs unmerged")
    ax.set_title(f"{report.model}: {report.threads} threads, median of {report.runs}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
