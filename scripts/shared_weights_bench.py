"""Bytes on disk and resident memory of two merge variants that share their weights: each format's
shared layout (export/shared.py) against one file per variant, side by side in one run.

A trunk of LAYERS Linear(WIDTH, WIDTH) (fp32) with two graphs over it (plain, and rows averaged as
a merge would), exported both ways. Memory: a fresh process per case loads one or two variants,
runs each once, and reports RssAnon + RssFile from /proc (runtime/memory.py).

    .venv/bin/python scripts/shared_weights_bench.py [--width 1024] [--layers 8] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from torch import nn

from tomobile.export.executorch_format import export_executorch, export_executorch_methods
from tomobile.export.onnx_format import export_onnx, export_onnx_shared
from tomobile.export.pipeline import _programs
from tomobile.export.registry import ExportOptions, PartInfo
from tomobile.graphs.exportable import Exportable, TensorSpec

VARIANTS = ("plain", "merged")


class Wide(Exportable):
    output_names = ("y",)

    def __init__(self, layers: nn.ModuleList, merged: bool, width: int) -> None:
        super().__init__()
        self.layers, self.merged = layers, merged
        self.input_specs = (TensorSpec("x", (8, width)),)

    def forward(self, x):
        for layer in self.layers:
            x = torch.relu(layer(x))  # (8, W)
            if self.merged:
                x = (x + x.flip(0)) * 0.5  # rows averaged in pairs
        return (x,)


def export_all(folder: Path, width: int, layers: int) -> None:
    torch.manual_seed(0)
    trunk = nn.ModuleList(nn.Linear(width, width) for _ in range(layers))
    parts = {v: Wide(trunk, v == "merged", width).eval() for v in VARIANTS}
    get = {v: _programs(m, m.example_inputs(0)) for v, m in parts.items()}
    info = {v: PartInfo(v, ("x",), ("y",)) for v in VARIANTS}
    opts = ExportOptions(backend="xnnpack")
    for kind in ("separate", "shared"):
        (folder / kind).mkdir(parents=True, exist_ok=True)
    for v in VARIANTS:
        export_onnx(get[v], info[v], folder / "separate" / f"{v}.onnx", opts)
        export_executorch(get[v], info[v], folder / "separate" / f"{v}.pte", opts)
    export_onnx_shared(get, info, folder / "shared" / "plain.onnx", opts)
    export_executorch_methods(get, info, folder / "shared" / "plain.pte", opts)


def measure(folder: Path, kind: str, fmt: str, variants: list[str]) -> dict:
    """A fresh process loads and runs `variants`: its RSS with the runtimes imported, then after each."""
    code = f"""
import json, numpy as np
from pathlib import Path
from tomobile.runtime.artifacts import load_runner
from tomobile.runtime.memory import proc_status, malloc_trim
import torch, onnxruntime, executorch.runtime  # the runtimes' own memory is the base
malloc_trim()
s = proc_status()
rows, held = [s["RssAnon"] + s["RssFile"]], []
for v in {variants!r}:
    if {fmt!r} == "onnx":
        r = load_runner("onnx", Path({str(folder / kind)!r}) / f"{{v}}.onnx")
    elif {kind!r} == "shared":
        r = load_runner("executorch", Path({str(folder / kind)!r}) / "plain.pte", method=v)
    else:
        r = load_runner("executorch", Path({str(folder / kind)!r}) / f"{{v}}.pte")
    r.run([np.ones((8, {WIDTH[0]}), np.float32)])
    held.append(r)
    malloc_trim()
    s = proc_status()
    rows.append(s["RssAnon"] + s["RssFile"])
print(json.dumps(rows))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


WIDTH = [1024]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    WIDTH[0] = args.width
    folder = args.out or Path(tempfile.mkdtemp(prefix="shared-bench-"))
    if not (folder / "shared" / "plain.pte").exists():  # --out of an earlier run: measure again only
        export_all(folder, args.width, args.layers)
    weights = args.layers * (args.width * args.width + args.width) * 4
    print(f"weights: {weights / 1e6:.1f} MB ({args.layers} x Linear({args.width}, {args.width}), fp32)")
    print("RSS: RssAnon + RssFile over the process with the runtimes imported, fresh process per column")
    print("| format | layout | bytes on disk | RSS 1 variant | RSS 2 variants | 2 / 1 |")
    print("|---|---|---|---|---|---|")
    for fmt, suffix in (("onnx", "onnx"), ("executorch", "pte")):
        for kind in ("separate", "shared"):
            size = sum(p.stat().st_size for p in (folder / kind).iterdir()
                       if p.name.endswith((f".{suffix}", f".{suffix}.data")))
            base1, one = measure(folder, kind, fmt, ["plain"])
            rows = measure(folder, kind, fmt, list(VARIANTS))
            one, two = one - base1, rows[-1] - rows[0]
            print(f"| {fmt} | {kind} | {size / 1e6:.1f} MB | {one / 1e6:.1f} MB | {two / 1e6:.1f} MB | {two / one:.2f}x |")


if __name__ == "__main__":
    main()
