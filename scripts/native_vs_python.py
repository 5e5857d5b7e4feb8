"""Per-call time of ExecuTorch exports in the native engine (tomobile-native time) against the
Python binding (ExecuTorchRunner), side by side: rounds alternate the two, same .pte, same test
vector inputs, same thread count; per-call medians, pooled over rounds. Wall time and the process's
CPU time per call (at 1 thread a call's own work); --json keeps every round's medians, so ratios
between two exports can be taken round by round.

    python scripts/native_vs_python.py DIR [DIR...] [--runs 20] [--rounds 3] [--threads 2] [--json F]

With ViT-B/16 exports at r=0, tome:r=16 and drop:r=16 it says whether the Python layer inflates the
merge overhead figure (tome over drop)."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from tomobile.runtime.manifest_reader import read_manifest
from tomobile.runtime.native_engine import build
from tomobile.runtime.runners import artifact_runner
from tomobile.runtime.runners.executorch import set_executorch_threads


def python_calls(folder: Path, runs: int) -> tuple[list[float], list[float]]:
    art = next(a for a in read_manifest(folder).artifacts if a.format == "executorch")
    data = np.load(folder / "test_vectors" / f"{art.part}.npz")
    case = data.files[0].split(".")[0]
    inputs = [data[k] for k in data.files if k.startswith(f"{case}.input.")]
    runner = artifact_runner(folder, art)
    runner.run(inputs)  # warm-up
    ms, cpu = [], []
    for _ in range(runs):
        t, c = time.perf_counter(), time.process_time()
        runner.run(inputs)
        cpu.append(1e3 * (time.process_time() - c))
        ms.append(1e3 * (time.perf_counter() - t))
    return ms, cpu


def native_calls(binary: Path, folder: Path, runs: int, threads: int) -> tuple[list[float], list[float]]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "time.json"
        subprocess.run([str(binary), "time", str(folder), "--runs", str(runs), "--threads", str(threads),
                        "--json", str(out)], check=True, capture_output=True)
        row = json.loads(out.read_text())[0]
        return row["runs_ms"], row["cpu_ms"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+", type=Path)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    binary = build()
    set_executorch_threads(args.threads)
    calls: dict[str, dict[str, list[float]]] = {str(f): {k: [] for k in ("native", "python", "native_cpu", "python_cpu")}
                                                for f in args.folders}
    rounds: list[dict[str, dict[str, float]]] = []
    for r in range(args.rounds):
        rounds.append({})
        for folder in args.folders:
            order = ("native", "python") if r % 2 == 0 else ("python", "native")
            for engine in order:
                ms, cpu = (native_calls(binary, folder, args.runs, args.threads) if engine == "native"
                           else python_calls(folder, args.runs))
                calls[str(folder)][engine] += ms
                calls[str(folder)][f"{engine}_cpu"] += cpu
                rounds[-1].setdefault(str(folder), {}).update(
                    {engine: statistics.median(ms), f"{engine}_cpu": statistics.median(cpu)})
    rows = []
    print(f"{'export':40s}  native ms  python ms  python/native  native cpu ms  python cpu ms")
    for folder, c in calls.items():
        n, py = statistics.median(c["native"]), statistics.median(c["python"])
        ncpu, pycpu = statistics.median(c["native_cpu"]), statistics.median(c["python_cpu"])
        rows.append({"folder": folder, "native_ms": n, "python_ms": py, "native_cpu_ms": ncpu,
                     "python_cpu_ms": pycpu, "runs": len(c["native"])})
        print(f"{folder:40s}  {n:9.2f}  {py:9.2f}  {py / n:13.3f}  {ncpu:13.2f}  {pycpu:13.2f}")
    if args.json:
        args.json.write_text(json.dumps({"threads": args.threads, "rows": rows, "rounds": rounds}, indent=2) + "\n")


if __name__ == "__main__":
    main()
