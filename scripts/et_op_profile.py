"""Where an ExecuTorch program's time goes, per XNNPACK operator type: each .pte runs through the
Python binding with an ETDump (the wheel's XNNPACK delegate logs every operator it runs), and the
per-call time of each operator type is summed, median over the calls after a warm-up (with --stat
min: each operator's fastest call, summed: the figure least moved by a loaded machine). With two
folders (a merged export and its drop: twin) the last column is the difference: the merge's time
by operator type.

    python scripts/et_op_profile.py DROP_DIR TOME_DIR [--runs 5] [--threads 1] [--json F]"""

from __future__ import annotations

import argparse
import collections
import json
import re
import statistics
import tempfile
from pathlib import Path

import torch
from executorch.devtools import Inspector
from executorch.extension.pybindings import portable_lib

from tomobile.runtime.manifest_reader import read_manifest
from tomobile.runtime.runners.executorch import set_executorch_threads
from tomobile.runtime.validate import vector_cases


def _program_and_inputs(folder: Path) -> tuple[Path, list[torch.Tensor]]:
    """The folder's (first) ExecuTorch program and its test-vector inputs."""
    art = next(a for a in read_manifest(folder).artifacts if a.format == "executorch")
    inputs, _ = next(iter(vector_cases(folder, art.part).values()))
    return folder / art.path, [torch.from_numpy(x) for x in inputs]


def op_times(folder: Path, runs: int, stat: str = "median") -> tuple[dict[str, float], dict[str, int], float]:
    """{operator type: per-call ms}, {operator type: operators}, delegate-call ms; per-call ms is the
    median over calls of each call's sum, or (stat="min") the sum of each operator's fastest call."""
    path, inputs = _program_and_inputs(folder)
    program = portable_lib._load_for_executorch(str(path), enable_etdump=True)
    for _ in range(runs + 1):
        program.forward(inputs)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "run.etdp"
        program.write_etdump_result_to_file(str(path))
        events = [e for block in Inspector(etdump_path=str(path)).event_blocks for e in block.events
                  if e.perf_data is not None and len(e.perf_data.raw) == runs + 1]
    per_call = collections.defaultdict(lambda: [0.0] * runs)
    fastest = collections.defaultdict(float)
    count = collections.Counter()
    for e in events:
        kind = re.sub(r" #\d+$", "", e.name)
        count[kind] += 1
        fastest[kind] += min(e.perf_data.raw[1:])
        for i, t in enumerate(e.perf_data.raw[1:]):
            per_call[kind][i] += t
    times = dict(fastest) if stat == "min" else {k: statistics.median(v) for k, v in per_call.items()}
    return times, dict(count), times.get("DELEGATE_CALL", float("nan"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+", type=Path)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--stat", choices=("median", "min"), default="median")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    set_executorch_threads(args.threads)
    results = {str(f): op_times(f, args.runs, args.stat) for f in args.folders}
    kinds = sorted({k for t, _, _ in results.values() for k in t}, key=lambda k: -results[str(args.folders[-1])][0].get(k, 0))
    head = "".join(f"  {f.name[:18]:>18s} ms (ops)" for f in args.folders)
    print(f"{'operator type':42s}{head}" + ("  last - first ms" if len(args.folders) == 2 else ""))
    for k in kinds:
        cells = [(results[str(f)][0].get(k, 0.0), results[str(f)][1].get(k, 0)) for f in args.folders]
        line = "".join(f"  {t:18.2f}    ({n:4d})" for t, n in cells)
        diff = f"  {cells[-1][0] - cells[0][0]:16.2f}" if len(cells) == 2 else ""
        print(f"{k[:42]:42s}{line}{diff}")
    if args.json:
        args.json.write_text(json.dumps({"threads": args.threads, "runs": args.runs, "stat": args.stat, "folders": {
            f: {"ms": t, "operators": n, "delegate_ms": d} for f, (t, n, d) in results.items()}}, indent=2) + "\n")


if __name__ == "__main__":
    main()
