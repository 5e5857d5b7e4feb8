"""Bytes on disk and resident memory of two merge variants that share their weights: each format's
shared layout (export/shared.py) against one file per variant, side by side in one run.

A trunk of LAYERS Linear(WIDTH, WIDTH) (fp32) with two graphs over it (plain, and rows averaged as
a merge would), exported both ways. Memory: a fresh process per case loads one or two variants,
runs each once, and reports RssAnon + RssFile and Pss from /proc (runtime/memory.py), per reader
setting (ORT_SETTINGS, ET_SETTINGS below); then each variant's per-call time in that process.

    .venv/bin/python scripts/shared_weights_bench.py [--width 1024] [--layers 8] [--out DIR]
        [--model linear|video-dit-large] [--formats onnx,executorch,coreai]
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

from tomobile.export.coreai_format import export_coreai, export_coreai_functions
from tomobile.export.executorch_format import export_executorch, export_executorch_methods
from tomobile.export.onnx_format import export_onnx, export_onnx_shared
from tomobile.export.pipeline import _programs
from tomobile.export.registry import ExportOptions, PartInfo
from tomobile.graphs.models.exportable import Exportable, TensorSpec

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


def large_parts() -> dict:
    """video-dit-large's denoiser without and with TDTM (the pair an LPL + TDTM clip loads): one model."""
    from tomobile.graphs.models.video_dit import VideoMerge
    from tomobile.graphs.models.video_random import LARGE, random_video_dit
    from tomobile.graphs.models.video_zoo import GuidedDenoiser

    model = random_video_dit(LARGE)
    return {"plain": GuidedDenoiser(model, VideoMerge()).eval(), "merged": GuidedDenoiser(model, VideoMerge(tdtm=True)).eval()}


FORMATS = ("onnx", "executorch", "coreai")


def export_all(folder: Path, width: int, layers: int, model: str = "linear", formats: tuple[str, ...] = FORMATS) -> None:
    torch.manual_seed(0)
    if model == "video-dit-large":
        parts = large_parts()
    else:
        trunk = nn.ModuleList(nn.Linear(width, width) for _ in range(layers))
        parts = {v: Wide(trunk, v == "merged", width).eval() for v in VARIANTS}
    import numpy as np

    np.savez(folder / "inputs.npz", *[t.numpy() for t in parts["plain"].example_inputs(0)])
    names = [s.name for s in parts["plain"].input_specs]
    get = {v: _programs(m, m.example_inputs(0)) for v, m in parts.items()}
    info = {v: PartInfo(v, tuple(names), tuple(parts[v].output_names)) for v in VARIANTS}
    opts = ExportOptions(backend="xnnpack")
    for kind in ("separate", "shared"):
        (folder / kind).mkdir(parents=True, exist_ok=True)
    separate = {"onnx": (export_onnx, "onnx"), "executorch": (export_executorch, "pte"),
                "coreai": (export_coreai, "aimodel")}
    shared = {"onnx": (export_onnx_shared, "onnx"), "executorch": (export_executorch_methods, "pte"),
              "coreai": (export_coreai_functions, "aimodel")}
    for fmt in formats:
        for v in VARIANTS if model == "linear" else ():  # video-dit-large: the shared layout only (737 MB each)
            separate[fmt][0](get[v], info[v], folder / "separate" / f"{v}.{separate[fmt][1]}", opts)
        shared[fmt][0](get, info, folder / "shared" / f"plain.{shared[fmt][1]}", opts)


# Reader settings measured per format (fresh process each): ONNX Runtime as tomobile's readers load
# it (each session maps the data file and prepacks its Gemm weights), with prepacking off (each
# session maps the file, nothing copied), and with prepacking off plus one OrtValue per tensor over
# one shared memmap of the data file (add_initializer: one mapping for all sessions), and prepacked
# once for all sessions (runtime/ort_shared.py: the C API's prepacked weights container, what
# generate uses); ExecuTorch with XNNPACK's weight cache off and on (runtime/xnnpack_options.py).
ORT_SETTINGS = ("default", "no_prepack", "no_prepack_shared_values", "shared_prepacked")
ET_SETTINGS = ("cache_off", "cache_on")


def measure(folder: Path, kind: str, fmt: str, setting: str, variants: list[str]) -> dict:
    """A fresh process loads and runs `variants`: RssAnon + RssFile and Pss (MB) with the runtimes
    imported, then after each variant; and each variant's median per-call ms."""
    code = f"""
import json, os, time, numpy as np
from pathlib import Path
os.environ["TOMOBILE_XNNPACK_WEIGHT_CACHE"] = "1" if {setting!r} == "cache_on" else "0"
from tomobile.runtime.artifacts import load_runner, ort_session_options
from tomobile.runtime.memory import proc_status, malloc_trim
from tomobile.runtime.ort_shared import SharedWeightSessions
import torch, onnx, onnxruntime as ort, executorch.runtime  # the runtimes' own memory is the base
from onnx.external_data_helper import ExternalDataInfo

def mem():
    malloc_trim()
    s = proc_status()
    pss = next(int(l.split()[1]) * 1024 for l in open("/proc/self/smaps_rollup") if l.startswith("Pss:"))
    return [s["RssAnon"] + s["RssFile"], pss]

folder = Path({str(folder / kind)!r})
values, by_place = {{}}, {{}}  # variant -> {{name: OrtValue}}; one OrtValue per place in the file
if {setting!r} == "no_prepack_shared_values":
    data = np.memmap(folder / "plain.onnx.data", dtype=np.uint8, mode="r")
    for v in {list(VARIANTS)!r}:
        values[v] = {{}}
        for t in onnx.load(str(folder / f"{{v}}.onnx"), load_external_data=False).graph.initializer:
            if t.data_location == onnx.TensorProto.EXTERNAL:  # graphs name constants independently
                i = ExternalDataInfo(t)
                dt = onnx.helper.tensor_dtype_to_np_dtype(t.data_type)
                key = (i.offset, i.length, str(dt), tuple(t.dims))
                if key not in by_place:
                    by_place[key] = ort.OrtValue.ortvalue_from_numpy(
                        data[i.offset:i.offset + i.length].view(dt).reshape(tuple(t.dims)))
                values[v][t.name] = by_place[key]
if {fmt!r} == "coreai":  # its runtime's libraries belong to the base too
    import coreai.runtime, coreai.authoring.asset
rows, held, ms, shared = [mem()], [], {{}}, None
x = list(np.load(Path({str(folder)!r}) / "inputs.npz").values())
for v in {variants!r}:
    if {setting!r} == "shared_prepacked":
        if shared is None:  # one owner of the mapped weights and the prepacked container
            shared = SharedWeightSessions(folder / "plain.onnx.data", threads=1)
        r = shared.session(folder / f"{{v}}.onnx").run
        shared.drop_resident()
    elif {fmt!r} == "onnx":
        o = ort_session_options(1, spinning=False)
        if {setting!r} != "default":
            o.add_session_config_entry("session.disable_prepacking", "1")
        for name, value in values.get(v, {{}}).items():
            o.add_initializer(name, value)
        s = ort.InferenceSession(str(folder / f"{{v}}.onnx"), sess_options=o, providers=["CPUExecutionProvider"])
        r = lambda a, s=s: s.run(None, dict(zip([i.name for i in s.get_inputs()], a)))
    elif {fmt!r} == "coreai":  # one asset with a function per variant, or an asset per variant
        shared_asset = {kind!r} == "shared"
        r = load_runner("coreai", folder / ("plain.aimodel" if shared_asset else f"{{v}}.aimodel"),
                        method=v if shared_asset else None).run
    elif {kind!r} == "shared":
        r = load_runner("executorch", folder / "plain.pte", method=v).run
    else:
        r = load_runner("executorch", folder / f"{{v}}.pte").run
    r(x)
    held.append(r)
    rows.append(mem())
for v, r in zip({variants!r}, held):
    ts = []
    for _ in range({RUNS[0]}):
        t = time.perf_counter(); r(x); ts.append(time.perf_counter() - t)
    ms[v] = 1e3 * float(np.median(ts))
print(json.dumps({{"rows": rows, "ms": ms}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode != 0:  # one cell's failure is reported in its row; the others still run
        last = (out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-1]
        raise RuntimeError(last[:160])
    return json.loads(out.stdout.strip().splitlines()[-1])


WIDTH = [1024]
RUNS = [20]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--model", choices=("linear", "video-dit-large"), default="linear",
                    help="the trunk above, or video-dit-large's denoiser without and with TDTM (737 MB)")
    ap.add_argument("--runs", type=int, default=20, help="calls timed per variant")
    ap.add_argument("--formats", default=",".join(FORMATS), help="formats to export and measure, comma-separated")
    ap.add_argument("--settings", nargs="*", default=None,
                    help=f"measure only these reader settings (of {', '.join(ORT_SETTINGS + ET_SETTINGS)}; Core AI: default)")
    args = ap.parse_args()
    RUNS[0] = args.runs
    WIDTH[0] = args.width
    folder = args.out or Path(tempfile.mkdtemp(prefix="shared-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    formats = tuple(f for f in args.formats.split(",") if f)
    if not (folder / "shared").exists():  # --out of an earlier run: measure again only
        export_all(folder, args.width, args.layers, args.model, formats)
    if args.model == "linear":
        weights = args.layers * (args.width * args.width + args.width) * 4
        print(f"weights: {weights / 1e6:.1f} MB ({args.layers} x Linear({args.width}, {args.width}), fp32)")
    else:
        print("video-dit-large: denoiser (plain) and denoiser_tdtm (merged), one model, 737 MB fp32")
    print("RSS: RssAnon + RssFile; Pss: proportional set size (a page mapped twice counts once); MB over the")
    print("process with the runtimes imported, fresh process per cell; ms: median per call, 1 thread (ORT)")
    print("2 / default 1: two variants in this setting over one variant in the format's first setting (its")
    print("readers' default before shared weights: ORT default, ExecuTorch cache off)")
    print("| format | layout | reader setting | on disk | RSS 1 variant | RSS 2 variants | 2 / 1 | 2 / default 1 "
          "| Pss 2 / 1 | ms per call |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    base: dict[str, float] = {}
    for fmt, suffix, settings in (("onnx", "onnx", ORT_SETTINGS), ("executorch", "pte", ET_SETTINGS),
                                  ("coreai", "aimodel", ("default",))):
        for kind in ("separate", "shared"):
            files = [p for p in (folder / kind).rglob("*") if p.is_file()
                     and any(part.endswith((f".{suffix}", f".{suffix}.data")) for part in p.relative_to(folder / kind).parts)]
            if fmt not in formats or not files:
                continue
            size = sum(p.stat().st_size for p in files)
            for setting in settings:
                if kind == "separate" and setting in ("no_prepack_shared_values", "shared_prepacked"):
                    continue  # no shared data file to map
                if args.settings and setting not in args.settings:
                    continue
                try:
                    one = measure(folder, kind, fmt, setting, ["plain"])
                    two = measure(folder, kind, fmt, setting, list(VARIANTS))
                except RuntimeError as err:
                    print(f"| {fmt} | {kind} | {setting} | {size / 1e6:.1f} MB | failed: {err} |", flush=True)
                    continue
                r1, r2 = (m["rows"][-1][0] - m["rows"][0][0] for m in (one, two))
                p1, p2 = (m["rows"][-1][1] - m["rows"][0][1] for m in (one, two))
                if setting == settings[0]:
                    base.setdefault(fmt, r1)  # one variant, the format's first setting (the default)
                against = f"{r2 / base[fmt]:.2f}x" if fmt in base else "n/a"
                ms = " / ".join(f"{two['ms'][v]:.1f}" for v in VARIANTS)
                print(f"| {fmt} | {kind} | {setting} | {size / 1e6:.1f} MB | {r1 / 1e6:.1f} MB | {r2 / 1e6:.1f} MB "
                      f"| {r2 / r1:.2f}x | {against} | {p2 / p1:.2f}x | {ms} |", flush=True)

if __name__ == "__main__":
    main()
