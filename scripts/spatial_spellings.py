"""The spatial merge alone (tomesd's: 2 x 2 cells, ratio 0.5, merge + copy-back around an identity)
in both spellings (graphs/methods/spatial_merge.py SpatialOps), exported to ONNX and ExecuTorch (XNNPACK
with portable kernels for what it does not take) and timed round-robin in CPU time at 1 thread,
per token count S and width C: the measurements `tomesd.spatial_ops` chooses from.

    .venv/bin/python scripts/spatial_spellings.py --sizes 16,32,64 --widths 32,320 --runs 15
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch

from tomobile.export.executorch_format import lower, program_summary
from tomobile.graphs.methods.merge import ARITHMETIC
from tomobile.graphs.methods.merge_indexed import INDEXED
from tomobile.graphs.methods.ops import MergeOps
from tomobile.graphs.methods.spatial_merge import SpatialMergeConfig, SpatialOps, merge_attend_unmerge
from tomobile.runtime.bench import timed_round_robin
from tomobile.runtime.runners.executorch import ExecuTorchRunner, set_executorch_threads
from tomobile.runtime.runners.onnxruntime import OnnxRunner


class MergeAlone(torch.nn.Module):
    def __init__(self, side: int, spatial: SpatialOps, ops: MergeOps) -> None:
        super().__init__()
        self.side, self.spatial, self.ops = side, spatial, ops

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return merge_attend_unmerge(x, self.side, self.side, SpatialMergeConfig(0.5), lambda t: t * 2.0, self.spatial,
                                    self.ops)


def export(side: int, width: int, ops: SpatialOps, fmt: str, folder: Path) -> tuple[Path, dict]:
    x = torch.randn(1, side * side, width)
    trace_ops = (INDEXED if fmt == "onnx" else ARITHMETIC).for_export()  # as the exporters trace
    with torch.no_grad():
        program = torch.export.export(MergeAlone(side, ops, trace_ops), (x,), strict=False)
    path = folder / f"{fmt}-{side}-{width}-{ops.value}.{'onnx' if fmt == 'onnx' else 'pte'}"
    if fmt == "onnx":
        with contextlib.redirect_stdout(io.StringIO()):
            torch.onnx.export(program, dynamo=True, verbose=False).save(str(path))
        return path, {}
    manager = lower(program, "xnnpack")
    path.write_bytes(manager.buffer)
    return path, program_summary(manager)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="16,32,64", help="grid sides (S = side^2)")
    parser.add_argument("--widths", default="32,320")
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    set_executorch_threads(1)
    print("format      S     C    one-hot cpu ms  indexed cpu ms  indexed/one-hot  ExecuTorch partitions (one-hot, indexed)")
    with tempfile.TemporaryDirectory() as tmp:
        for side in map(int, args.sizes.split(",")):
            for width in map(int, args.widths.split(",")):
                x = np.random.default_rng(0).standard_normal((1, side * side, width)).astype(np.float32)
                for fmt in ("onnx", "executorch"):
                    runners, parts = {}, []
                    for ops in SpatialOps:
                        path, info = export(side, width, ops, fmt, Path(tmp))
                        runners[ops] = OnnxRunner(path, threads=1) if fmt == "onnx" else ExecuTorchRunner(path)
                        parts.append(str(info.get("partitions", "-")))
                    fns = {ops: (lambda r=r, x=x: r.run([x])) for ops, r in runners.items()}
                    cpu = timed_round_robin(fns, args.runs, progress=False).cpu
                    one_hot, indexed = (statistics.median(cpu[o]) * 1e3 for o in SpatialOps)
                    print(f"{fmt:<10}  {side * side:<4}  {width:<4} {one_hot:>14.3f}  {indexed:>14.3f}  "
                          f"{indexed / one_hot:>15.2f}  {', '.join(parts) if fmt == 'executorch' else '-'}", flush=True)


if __name__ == "__main__":
    main()
