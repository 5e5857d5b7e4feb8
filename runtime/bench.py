"""Latency of exported artifacts, merged against unmerged and against the token-drop oracle.

Every variant of one model (the unmerged export, one export per merge SPEC, and for each ToMe
SPEC its `drop:` twin: same plan and shapes, no merge work) is loaded at once and timed
round-robin per runtime and thread count: run i of every variant before run i + 1 of any, the
starting variant rotating, so a noisy neighbour slows all variants alike. The report holds
min/median/max per variant, the speedup against the unmerged variant, the analytic FLOP ratio
(flops.py), the oracle's speedup, and the merge overhead = time(tome) / time(drop) - 1 with the
spread of the same ratio taken round by round (quartiles); ONNX Runtime's profiler share of the
merge ops, and ExecuTorch's delegate partitions and the operators left on portable kernels.

Core AI rows run coreai-core's Linux CPU backend, which sets its own threads (the row is timed
once, at the first thread count asked) and is not what an iPhone runs (Neural Engine / GPU): its
speedup and the oracle's are the figures to read, not its milliseconds.
"""

from __future__ import annotations

import gc
import json
import logging
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .artifacts import CoreAIRunner, ExecuTorchRunner, OnnxRunner
from .manifest import load_manifest
from .tables import aligned_table

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchRuntime:
    """A runtime row: manifest format, artifact path in a variant folder, float input dtype."""

    name: str
    fmt: str
    artifact: str
    float_dtype: str = "float32"


# The int8 and fp16 rows run files that `tomobile bench` exports beside model.onnx / model.pte.
RUNTIMES = {r.name: r for r in (
    BenchRuntime("onnxruntime", "onnx", "model.onnx"),
    BenchRuntime("onnxruntime-int8", "onnx", "model.int8.onnx"),
    BenchRuntime("executorch", "executorch", "model.pte"),
    BenchRuntime("executorch-fp16", "executorch", "fp16/model.pte", "float16"),
    BenchRuntime("executorch-int8", "executorch", "int8/model.pte"),
    BenchRuntime("coreai", "coreai", "model.aimodel"),
)}
# Runtimes whose thread count tomobile cannot set: timed once per bench, at the first count.
OWN_THREADS = ("coreai",)


@dataclass(frozen=True)
class Variant:
    """One exported model folder: label ('r=0', 'r=16', 'drop r=16'), r of the first layer, FLOP
    ratio, method ('none' | 'tome' | 'drop') and, for a ToMe variant, the label of its drop twin."""

    label: str
    r: int
    folder: Path
    flop_ratio: float
    method: str = "tome"
    oracle: str | None = None
    part: str = "model"  # the artifact stem: 'model', or 'unet/model' for a diffusers UNet

    def artifact(self, runtime: BenchRuntime) -> Path:
        """The file `runtime` runs: 'model.onnx' -> 'unet/model.onnx', 'fp16/model.pte' -> 'fp16/unet/model.pte'."""
        path = Path(runtime.artifact)
        return self.folder / path.parent / (self.part + path.name[len("model"):])


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
    threads: int = 1
    method: str = "tome"
    oracle_speedup: float | None = None  # speedup of the drop twin (same plan, no merge work)
    merge_overhead: float | None = None  # median(tome) / median(drop) - 1
    overhead_q1: float | None = None  # quartiles of the per-round ratio tome_i / drop_i - 1
    overhead_q3: float | None = None


@dataclass
class BenchReport:
    model: str
    threads: list[int]
    runs: int
    rows: list[BenchRow] = field(default_factory=list)
    eager: list[dict] = field(default_factory=list)  # reference-vs-static rows (reference_merge.py)

    def to_json(self) -> dict:
        out: dict = {"model": self.model, "threads": self.threads, "runs": self.runs, "runtimes": {}}
        for row in self.rows:
            out["runtimes"].setdefault(row.runtime, {}).setdefault(str(row.threads), {})[row.label] = asdict(row)
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


def load_inputs(folder: Path, part: str = "model", float_dtype: str = "float32") -> list[np.ndarray]:
    """The seeded inputs the export wrote as test vectors, in input order (floats as float_dtype)."""
    data = np.load(folder / "test_vectors" / f"{part}.npz")
    arrays = [data[k] for k in data.files if k.startswith("seeded.input.")]
    return [a.astype(float_dtype) if a.dtype == np.float32 else a for a in arrays]


def _runner(runtime: BenchRuntime, path: Path, threads: int):
    if runtime.fmt == "onnx":
        return OnnxRunner(path, threads=threads)
    if runtime.fmt == "coreai":
        return CoreAIRunner(path)
    set_executorch_threads(threads)
    return ExecuTorchRunner(path)


def set_executorch_threads(threads: int) -> None:
    from executorch.extension.pybindings import portable_lib

    if portable_lib._threadpool_get_thread_count() != threads:
        portable_lib._unsafe_reset_threadpool(threads)


def _artifact_info(v: Variant, rt: BenchRuntime) -> dict:
    """The manifest entry of the variant's ExecuTorch artifact (the export folder holds the manifest)."""
    sub = Path(rt.artifact).parent
    manifest = load_manifest(v.folder / sub)
    name = v.artifact(rt).relative_to(v.folder / sub).as_posix()
    return next((a for a in manifest.get("artifacts", []) if a["path"] in (name, Path(name).name)
                 and a["part"] == v.part), {})


def bench_runtime(runtime: str, variants: list[Variant], runs: int, threads: int,
                  progress: bool = True) -> list[BenchRow]:
    """Round-robin latency of every variant on one runtime at one thread count; variants[0] is
    the unmerged baseline."""
    rt = RUNTIMES[runtime]
    missing = [str(v.artifact(rt)) for v in variants if not v.artifact(rt).exists()]
    if missing:
        raise FileNotFoundError(f"{missing[0]} is missing: export it first")
    runners = {v.label: (_runner(rt, v.artifact(rt), threads), load_inputs(v.folder, v.part, rt.float_dtype))
               for v in variants}
    fns = {label: (lambda r=r, x=x: r.run(x)) for label, (r, x) in runners.items()}
    times = round_robin(fns, runs, progress=progress, desc=f"{runtime} x{threads}")
    for r, _ in runners.values():
        if hasattr(r, "close"):  # Core AI: release every loaded model now
            r.close()
    del runners, fns
    gc.collect()
    return _rows(rt, variants, times, threads)


def _rows(rt: BenchRuntime, variants: list[Variant], times: dict[str, list[float]], threads: int) -> list[BenchRow]:
    base = statistics.median(times[variants[0].label])
    rows = []
    for v in variants:
        t = times[v.label]
        med = statistics.median(t)
        row = BenchRow(rt.name, v.label, v.r, med * 1e3, min(t) * 1e3, max(t) * 1e3, base / med,
                       v.flop_ratio, base / med / v.flop_ratio, threads=threads, method=v.method)
        if v.oracle is not None:
            drop = times[v.oracle]
            row.oracle_speedup = base / statistics.median(drop)
            row.merge_overhead = med / statistics.median(drop) - 1.0
            paired = [a / b - 1.0 for a, b in zip(t, drop, strict=True)]  # same round, side by side
            row.overhead_q1, row.overhead_q3 = (float(q) for q in np.percentile(paired, [25, 75]))
        if rt.fmt == "executorch":
            info = _artifact_info(v, rt)
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
    with tempfile.TemporaryDirectory(prefix="tomobile-ort-profile-") as tmp:  # removed with the profile in it
        runner = OnnxRunner(onnx_path, threads=threads, profile=Path(tmp) / "profile")
        for _ in range(runs + 2):
            runner.run(inputs)
        events = json.loads(Path(runner.end_profiling()).read_text())
    total = merged = 0.0
    for ev in events:
        if ev.get("cat") != "Node" or not ev.get("name", "").endswith("_kernel_time"):
            continue
        dur = float(ev.get("dur", 0))
        total += dur
        if ev["name"].removesuffix("_kernel_time") in merge_nodes:
            merged += dur
    return merged / total if total > 0 else 0.0


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:+.1f}%"


def format_table(report: BenchReport) -> str:
    header = ("runtime", "threads", "variant", "median ms", "min ms", "max ms", "speedup", "FLOP ratio",
              "oracle speedup", "merge overhead", "overhead IQR", "merge share", "partitions", "portable ops")
    rows = [header]
    for r in report.rows:
        share = "-" if r.merge_share is None else f"{100 * r.merge_share:.1f}%"
        parts = "-" if r.partitions is None else str(r.partitions)
        iqr = "-" if r.overhead_q1 is None else f"{_pct(r.overhead_q1)}..{_pct(r.overhead_q3)}"
        rows.append((r.runtime, str(r.threads), r.label, f"{r.median_ms:.1f}", f"{r.min_ms:.1f}", f"{r.max_ms:.1f}",
                     f"{r.speedup:.2f}", f"{r.flop_ratio:.2f}",
                     "-" if r.oracle_speedup is None else f"{r.oracle_speedup:.2f}", _pct(r.merge_overhead), iqr,
                     share, parts, ", ".join(op.removeprefix("aten::") for op in r.portable_ops) or "-"))
    return aligned_table(rows)


def save_plot(report: BenchReport, path: Path) -> None:
    """Speedup against r per runtime (ToMe solid, its drop oracle dashed) with the FLOP-ratio line,
    one panel per thread count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    threads = sorted({r.threads for r in report.rows})
    fig, axes = plt.subplots(1, len(threads), figsize=(6 * len(threads), 4), dpi=100, squeeze=False)
    flops = sorted({(r.r, r.flop_ratio) for r in report.rows if r.method != "drop"})
    for ax, n in zip(axes[0], threads, strict=True):
        runtimes = list(dict.fromkeys(r.runtime for r in report.rows if r.threads == n))
        for i, runtime in enumerate(runtimes):
            color = f"C{i}"
            rows = sorted((r for r in report.rows if r.runtime == runtime and r.threads == n), key=lambda r: r.r)
            tome = [r for r in rows if r.method != "drop"]
            ax.plot([r.r for r in tome], [r.speedup for r in tome], "o-", color=color, label=runtime)
            oracle = [r for r in rows if r.method == "none"] + [r for r in rows if r.method == "drop"]
            if len(oracle) > 1:
                ax.plot([r.r for r in oracle], [r.speedup for r in oracle], "x--", color=color, alpha=0.7,
                        label=f"{runtime} drop oracle")
        ax.plot([r for r, _ in flops], [f for _, f in flops], "k:", label="FLOP ratio")
        ax.set_xlabel("r (tokens merged per layer)")
        ax.set_ylabel("speedup vs unmerged")
        ax.set_title(f"{report.model}: {n} thread{'s' if n > 1 else ''}, median of {report.runs}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
