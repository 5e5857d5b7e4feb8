"""Latency of exported artifacts, merged against unmerged and against the token-drop oracle.

Every variant of one model (the unmerged export, one export per merge SPEC, and for each ToMe
SPEC its `drop:` twin: same plan and shapes, no merge work) is loaded at once and timed
round-robin per runtime and thread count: run i of every variant before run i + 1 of any, the
starting variant rotating, so a noisy neighbour slows all variants alike. The report holds
min/median/max per variant, the speedup against the unmerged variant, the analytic FLOP ratio
(flops.py), the oracle's speedup, and the merge overhead = time(tome) / time(drop) - 1 with the
spread of the same ratio taken round by round (quartiles); ONNX Runtime's profiler share of the
merge ops, and ExecuTorch's delegate partitions and the operators left on portable kernels.

Three figures per variant, side by side: wall time per call (`time.perf_counter`), CPU time per
call (`time.process_time`, the process's CPU seconds: at 1 thread the call's own work, steadier
than wall time on a loaded machine; at more threads ONNX Runtime's spinning workers inflate it),
and, with `count_calls`, instructions per call counted by callgrind (count.py: repeatable whatever
else the machine does, but valgrind is slow, so only for small graphs). Each row's verdict names
the figure it rests on: instructions where counted, else CPU time at 1 thread, else wall time.

Core AI rows run coreai-core's Linux CPU backend, which sets its own threads (the row is timed
once, at the first thread count asked) and is not what an iPhone runs (Neural Engine / GPU): its
speedup and the oracle's are the figures to read, not its milliseconds.
"""

from __future__ import annotations

import functools
import gc
import json
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .bench_report import BenchRow
from .count import count_instructions, counted
from .manifest import FORMATS, RUNTIME_FORMATS
from .manifest_reader import Artifact, read_manifest
from .native_engine import build as build_native
from .runners import Runner, load_runner
from .runners.executorch import set_executorch_threads
from .runners.onnxruntime import OnnxRunner

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchRuntime:
    """A runtime row: manifest format, artifact path in a variant folder, float input dtype."""

    name: str
    fmt: str
    artifact: str
    float_dtype: str = "float32"


def _bench_runtime(name: str, file: str = "model{suffix}", float_dtype: str = "float32") -> BenchRuntime:
    """A row named after its runtime (`onnxruntime-int8` runs on onnxruntime), `file` with the
    runtime's format suffix (manifest.FORMATS)."""
    fmt = FORMATS[RUNTIME_FORMATS[name.split("-")[0]]]
    return BenchRuntime(name, fmt.name, file.format(suffix=fmt.suffix), float_dtype)


# The int8 and fp16 rows run files that `tomobile bench` exports beside model.onnx / model.pte.
RUNTIMES = {r.name: r for r in (
    _bench_runtime("onnxruntime"),
    _bench_runtime("onnxruntime-int8", "model.int8{suffix}"),
    _bench_runtime("executorch"),
    _bench_runtime("executorch-fp16", "fp16/model{suffix}", "float16"),
    _bench_runtime("executorch-int8", "int8/model{suffix}"),
    _bench_runtime("coreai"),
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
class Timings:
    """Seconds per call of every fn, in call order: wall clock and the process's CPU time."""

    wall: dict[str, list[float]]
    cpu: dict[str, list[float]]


def timed_round_robin(fns: dict[str, Callable[[], object]], runs: int, warmup: int = 2,
                      progress: bool = True, desc: str = "bench") -> Timings:
    """Every fn timed interleaved: each round calls every fn once, rotating the start."""
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    times = Timings({n: [] for n in names}, {n: [] for n in names})
    for i in tqdm(range(runs), desc=desc, unit="round", disable=not progress):
        for name in names[i % len(names):] + names[: i % len(names)]:
            start, start_cpu = time.perf_counter(), time.process_time()
            fns[name]()
            times.cpu[name].append(time.process_time() - start_cpu)
            times.wall[name].append(time.perf_counter() - start)
    return times


def round_robin(fns: dict[str, Callable[[], object]], runs: int, warmup: int = 2,
                progress: bool = True, desc: str = "bench") -> dict[str, list[float]]:
    """Wall seconds per call of every fn, interleaved (timed_round_robin)."""
    return timed_round_robin(fns, runs, warmup, progress, desc).wall


def load_inputs(folder: Path, part: str = "model", float_dtype: str = "float32") -> list[np.ndarray]:
    """The seeded inputs the export wrote as test vectors, in input order (floats as float_dtype)."""
    data = np.load(folder / "test_vectors" / f"{part}.npz")
    arrays = [data[k] for k in data.files if k.startswith("seeded.input.")]
    return [a.astype(float_dtype) if a.dtype == np.float32 else a for a in arrays]


def _runner(runtime: BenchRuntime, path: Path, threads: int) -> Runner:
    if runtime.fmt == "executorch":
        set_executorch_threads(threads)
    return load_runner(runtime.fmt, path, threads=threads)


def _artifact_info(v: Variant, rt: BenchRuntime) -> Artifact | None:
    """The manifest entry of the variant's artifact (the export folder holds the manifest)."""
    sub = Path(rt.artifact).parent
    manifest = read_manifest(v.folder / sub)
    name = v.artifact(rt).relative_to(v.folder / sub).as_posix()
    return next((a for a in manifest.artifacts if a.path in (name, Path(name).name) and a.part == v.part), None)


def artifact_bytes(v: Variant, rt: BenchRuntime) -> int:
    """The bytes a variant's artifact loads: its file and its weights or external data file."""
    info = _artifact_info(v, rt)
    if info is None:
        return v.artifact(rt).stat().st_size
    return sum(r.bytes or 0 for r in (info.file, info.weights, info.external_data) if r is not None)


def memory_available() -> int:
    """MemAvailable from /proc/meminfo in bytes (what can be allocated without swapping); 0 where unknown."""
    try:
        with open("/proc/meminfo") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return 0


def fit_together(variants: list[Variant], rt: BenchRuntime, available: int) -> bool:
    """Whether every variant's runtime can be loaded at once: their artifacts' bytes within 70% of
    the available memory (the rest for activations and the runtimes' own buffers). Unknown memory
    (0): assumed to fit, as before this check."""
    return available <= 0 or sum(artifact_bytes(v, rt) for v in variants) <= 0.7 * available


def sequential_timings(fns: dict[str, Callable[[], Callable[[], object]]], runs: int, warmup: int = 2,
                       progress: bool = True, desc: str = "bench") -> Timings:
    """Every variant loaded, timed `runs` times and released before the next loads (`fns`: name ->
    a loader returning the call): for variants that do not fit in memory together. Not interleaved,
    so a slow spell of the machine lands on one variant; CPU time is the steadier figure here."""
    times = Timings({n: [] for n in fns}, {n: [] for n in fns})
    for name, load in tqdm(fns.items(), desc=desc, unit="variant", disable=not progress):
        call = load()
        for _ in range(warmup):
            call()
        for _ in range(runs):
            start, start_cpu = time.perf_counter(), time.process_time()
            call()
            times.cpu[name].append(time.process_time() - start_cpu)
            times.wall[name].append(time.perf_counter() - start)
        del call
        gc.collect()
    return times


def bench_runtime(runtime: str, variants: list[Variant], runs: int, threads: int,
                  progress: bool = True, count_calls: int = 0) -> list[BenchRow]:
    """Latency of every variant on one runtime at one thread count, round-robin when all fit in
    memory together, one after another otherwise; variants[0] is the unmerged baseline.
    `count_calls` > 0: also instructions per call (count_runtime)."""
    rt = RUNTIMES[runtime]
    missing = [str(v.artifact(rt)) for v in variants if not v.artifact(rt).exists()]
    if missing:
        raise FileNotFoundError(f"{missing[0]} is missing: export it first")
    together = fit_together(variants, rt, memory_available())
    if together:
        calls = {v.label: load_call(rt, v, threads) for v in variants}
        times = timed_round_robin(calls, runs, progress=progress, desc=f"{runtime} x{threads}")
        del calls  # every runner closed now (Core AI: its loaded models released)
    else:
        log.warning("%s: the %d variants do not fit in memory together; each is loaded, timed and released in turn "
                    "(not round-robin)", runtime, len(variants))
        times = sequential_timings({v.label: functools.partial(load_call, rt, v, threads) for v in variants},
                                   runs, progress=progress, desc=f"{runtime} x{threads}, one at a time")
    gc.collect()
    rows = _rows(rt, variants, times, threads)
    for row in rows:
        row.round_robin = together
    if count_calls and rt.fmt in COUNTED:
        _add_counts(rows, variants, count_runtime(runtime, variants, count_calls))
    if count_calls and rt.fmt == "executorch":
        _add_counts(rows, variants, count_native(runtime, variants, count_calls), native=True)
    return rows


class LoadedCall:
    """A variant's runner and its seeded inputs as one call; the runner is closed when the call is
    released (Core AI frees its loaded model then)."""

    def __init__(self, runner: Runner, inputs: list[np.ndarray]) -> None:
        self.runner, self.inputs = runner, inputs

    def __call__(self) -> object:
        return self.runner.run(self.inputs)

    def __del__(self) -> None:
        self.runner.close()


def load_call(rt: BenchRuntime, v: Variant, threads: int) -> LoadedCall:
    """The variant's artifact loaded on `rt` at `threads`, with the export's seeded inputs."""
    return LoadedCall(_runner(rt, v.artifact(rt), threads), load_inputs(v.folder, v.part, rt.float_dtype))


def _paired(t: list[float], drop: list[float]) -> tuple[float, float]:
    """Quartiles of the per-round ratio t_i / drop_i - 1 (same round, side by side)."""
    paired = [a / b - 1.0 for a, b in zip(t, drop, strict=True)]
    q1, q3 = (float(q) for q in np.percentile(paired, [25, 75]))
    return q1, q3


def _rows(rt: BenchRuntime, variants: list[Variant], times: Timings | dict[str, list[float]],
          threads: int) -> list[BenchRow]:
    if not isinstance(times, Timings):  # wall times alone
        times = Timings(times, {})
    wall, cpu = times.wall, times.cpu
    base = statistics.median(wall[variants[0].label])
    cpu_base = statistics.median(cpu[variants[0].label]) if cpu else None
    rows = []
    for v in variants:
        t = wall[v.label]
        med = statistics.median(t)
        row = BenchRow(rt.name, v.label, v.r, med * 1e3, min(t) * 1e3, max(t) * 1e3, base / med,
                       v.flop_ratio, base / med / v.flop_ratio, threads=threads, method=v.method,
                       verdict="cpu" if cpu and threads == 1 else "wall")
        if cpu:
            row.cpu_ms = statistics.median(cpu[v.label]) * 1e3
            row.cpu_speedup = cpu_base * 1e3 / row.cpu_ms
        if v.oracle is not None:
            drop = wall[v.oracle]
            row.oracle_speedup = base / statistics.median(drop)
            row.merge_overhead = med / statistics.median(drop) - 1.0
            row.overhead_q1, row.overhead_q3 = _paired(t, drop)
            if cpu:
                row.cpu_overhead = statistics.median(cpu[v.label]) / statistics.median(cpu[v.oracle]) - 1.0
                row.cpu_overhead_q1, row.cpu_overhead_q3 = _paired(cpu[v.label], cpu[v.oracle])
        if rt.fmt == "executorch":
            info = _artifact_info(v, rt)
            row.partitions = info.partitions if info else None
            row.portable_ops = list(info.operators) if info else []
        rows.append(row)
    return rows


# Formats whose artifacts count_runtime can count through their Python bindings.
COUNTED = ("onnx", "executorch")


def count_runtime(runtime: str, variants: list[Variant], calls: int) -> dict[str, float]:
    """Instructions per call of every variant through the runtime's Python bindings, at 1 thread:
    one callgrind child per variant (count.py), counting `calls` calls after an uncounted warm-up."""
    rt = RUNTIMES[runtime]
    counts = {}
    for v in variants:
        command = [sys.executable, "-m", __name__, rt.fmt, str(v.artifact(rt)), str(v.folder), v.part,
                   rt.float_dtype, str(calls)]
        counts[v.label] = count_instructions(command, calls)
    return counts


def count_native(runtime: str, variants: list[Variant], calls: int) -> dict[str, float]:
    """Instructions per call of every variant's .pte in the native engine (`tomobile-native time
    DIR --runs N --threads 1`, which brackets its timed runs for callgrind)."""
    binary = build_native()
    sub = Path(RUNTIMES[runtime].artifact).parent
    return {v.label: count_instructions([str(binary), "time", str(v.folder / sub), "--runs", str(calls),
                                         "--threads", "1"], calls) for v in variants}


def _add_counts(rows: list[BenchRow], variants: list[Variant], counts: dict[str, float], native: bool = False) -> None:
    """Instruction counts into the rows: per call, speedup against variants[0], overhead over the twin."""
    base = counts[variants[0].label]
    for row, v in zip(rows, variants, strict=True):
        overhead = counts[v.label] / counts[v.oracle] - 1.0 if v.oracle is not None else None
        if native:
            row.native_instructions, row.native_overhead = counts[v.label], overhead
        else:
            row.instructions, row.instr_speedup, row.instr_overhead = counts[v.label], base / counts[v.label], overhead
            row.verdict = "instructions"


def _count_child(fmt: str, artifact: str, folder: str, part: str, float_dtype: str, calls: str) -> None:
    """The callgrind child of count_runtime: load at 1 thread, one warm-up call, then `calls` counted calls."""
    runner = _runner(BenchRuntime(fmt, fmt, "", float_dtype), Path(artifact), 1)
    inputs = load_inputs(Path(folder), part, float_dtype)
    runner.run(inputs)  # first-call allocations and packing, uncounted
    with counted():
        for _ in range(int(calls)):
            runner.run(inputs)


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


if __name__ == "__main__":  # count_runtime's child: FMT ARTIFACT FOLDER PART FLOAT_DTYPE CALLS
    _count_child(*sys.argv[1:])
