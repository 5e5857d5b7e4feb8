"""Where an ONNX Runtime session's time goes, per operator type: each folder's ONNX model runs on
its own test-vector inputs with ONNX Runtime's profiler on, and each operator type's time is summed
per call (median over the profiled calls after one warm-up). With two folders (a merged export and
its drop: twin) the last column is the difference: the merge's time by operator type.

    python scripts/ort_op_profile.py DROP_DIR TOME_DIR [--runs 3] [--threads 1] [--json F]"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

from tomobile.runtime.manifest_reader import read_manifest
from tomobile.runtime.validate import vector_cases


def _model_and_inputs(folder: Path) -> tuple[Path, list[np.ndarray]]:
    """The folder's (first) ONNX model and its first test-vector case's inputs, in input order."""
    art = next(a for a in read_manifest(folder).artifacts if a.format == "onnx")
    inputs, _ = next(iter(vector_cases(folder, art.part).values()))
    return folder / art.path, inputs


def op_times(folder: Path, runs: int, threads: int) -> tuple[dict[str, float], float]:
    """({operator type: per-call ms}, per-call ms of the whole run), medians over `runs` profiled calls."""
    model, inputs = _model_and_inputs(folder)
    with tempfile.TemporaryDirectory() as tmp:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.enable_profiling = True
        opts.profile_file_prefix = str(Path(tmp) / "prof")
        sess = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
        feeds = {i.name: x for i, x in zip(sess.get_inputs(), inputs, strict=True)}
        for _ in range(runs + 1):
            sess.run(None, feeds)
        events = json.loads(Path(sess.end_profiling()).read_text())
    calls = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"][1:]
    per_call: list[collections.Counter] = []
    for call in calls:
        lo, hi = call["ts"], call["ts"] + call["dur"]
        c: collections.Counter = collections.Counter()
        for e in events:
            if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and lo <= e["ts"] <= hi:
                c[e["args"]["op_name"]] += e["dur"] / 1000.0
        per_call.append(c)
    ops = {op for c in per_call for op in c}
    return ({op: statistics.median(c[op] for c in per_call) for op in ops},
            statistics.median(call["dur"] / 1000.0 for call in calls))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="+", type=Path, help="export folders: DROP_DIR [TOME_DIR]")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    results = [op_times(f, args.runs, args.threads) for f in args.folders]
    ops = sorted({op for times, _ in results for op in times}, key=lambda op: -results[-1][0].get(op, 0.0))
    head = ["op"] + [f.name for f in args.folders] + (["difference"] if len(results) == 2 else [])
    print(" | ".join(head))
    for op in ops:
        row = [results[i][0].get(op, 0.0) for i in range(len(results))]
        extra = [row[1] - row[0]] if len(row) == 2 else []
        print(" | ".join([op] + [f"{v:.1f}" for v in row + extra]))
    print(" | ".join(["call"] + [f"{total:.1f}" for _, total in results]
                     + ([f"{results[1][1] - results[0][1]:.1f}"] if len(results) == 2 else [])))
    if args.json:
        args.json.write_text(json.dumps({str(f): {"ops": t, "call_ms": c} for f, (t, c) in zip(args.folders, results)},
                                        indent=1))


if __name__ == "__main__":
    main()
