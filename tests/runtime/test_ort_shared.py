"""ONNX Runtime readers hold a weight group's weights once (runtime/runners/ort_shared.py): two graphs on one
shared .onnx.data, opened through one SharedWeightSessions, add the prepacked weights once, give
the outputs of ordinary sessions bit for bit, and generate's reader takes that path for a group.
Memory cases run in fresh processes and read RssAnon from /proc after each session."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn
from wide_model import LAYERS, WIDTH, Wide  # tests/runtime/wide_model.py: the model both memory tests load

from tomobile.export.onnx_format import export_onnx_shared
from tomobile.export.output import finalize
from tomobile.export.pipeline import _programs, stage_export
from tomobile.export.registry import ExportOptions, PartInfo
from tomobile.graphs.models.exportable import ModelBundle
from tomobile.runtime import video
from tomobile.runtime.manifest_reader import read_manifest
from tomobile.runtime.runners.onnxruntime import OnnxRunner
from tomobile.runtime.runners.ort_shared import MIN_SHARED_BYTES, SharedWeightSessions, external_initializers


def _parts() -> tuple[dict[str, Wide], int]:
    torch.manual_seed(0)
    trunk = nn.ModuleList(nn.Linear(WIDTH, WIDTH) for _ in range(LAYERS))
    return {v: Wide(trunk, v == "merged").eval() for v in ("plain", "merged")}, sum(p.numel() * 4 for p in trunk.parameters())


@pytest.fixture(scope="module")
def shared_onnx(tmp_path_factory):
    parts, weights = _parts()
    out = tmp_path_factory.mktemp("ort") / "plain.onnx"
    export_onnx_shared({v: _programs(m, m.example_inputs(0)) for v, m in parts.items()},
                       {v: PartInfo(v, ("x",), ("y",)) for v in parts}, out, ExportOptions())
    return out.parent, weights


_CHILD = """
import json
import numpy as np
import onnxruntime as ort
from pathlib import Path
from tomobile.runtime.runners.onnxruntime import ort_session_options
from tomobile.runtime.memory import malloc_trim, proc_status
from tomobile.runtime.runners.ort_shared import SharedWeightSessions, _Api

def anon():
    malloc_trim()
    return proc_status()["RssAnon"]

folder = Path({folder!r})
x = np.random.default_rng(0).standard_normal((8, {width})).astype(np.float32)
_Api.get()  # both cases load the C library before the base line
rows, held, outs = [anon()], [], []
shared = SharedWeightSessions(folder / "plain.onnx.data", threads=1) if {shared!r} else None
for v in ("plain", "merged"):
    if shared is not None:
        run = shared.session(folder / f"{{v}}.onnx").run
    else:
        s = ort.InferenceSession(str(folder / f"{{v}}.onnx"), ort_session_options(1), providers=["CPUExecutionProvider"])
        run = lambda a, s=s: s.run(None, {{"x": a[0]}})
    outs.append(run([x])[0].tolist())
    held.append(run)
    rows.append(anon())
print(json.dumps({{"rows": rows, "outs": outs}}))
"""


def _load_both(folder, shared: bool) -> dict:
    code = _CHILD.format(folder=str(folder), width=WIDTH, shared=shared)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_two_sessions_hold_the_prepacked_weights_once(shared_onnx):
    folder, weights = shared_onnx
    on, off = _load_both(folder, shared=True), _load_both(folder, shared=False)
    for got in (on, off):  # the first session packs the weights either way: the measurement sees them
        assert got["rows"][1] - got["rows"][0] > 0.8 * weights
    assert off["rows"][2] - off["rows"][1] > 0.8 * weights  # ORT's default: packed again per session
    assert on["rows"][2] - on["rows"][1] < 0.4 * weights  # one container: the same packed copy (+ a session)
    assert on["outs"] == off["outs"]  # the same kernels on the same packed bytes: bit for bit
    assert not np.allclose(on["outs"][0], on["outs"][1])  # each session ran its own graph


def test_shared_values_come_from_the_one_data_file(shared_onnx):
    folder, weights = shared_onnx
    found = [external_initializers(folder / f"{v}.onnx") for v in ("plain", "merged")]
    assert found[0] == found[1] and {f[0] for f in found[0].values()} == {"plain.onnx.data"}
    assert sum(f[2] for f in found[0].values()) >= LAYERS * WIDTH * WIDTH * 4
    owner = SharedWeightSessions(folder / "plain.onnx.data", threads=1)
    owner.session(folder / "plain.onnx")
    owner.session(folder / "merged.onnx")
    # one OrtValue per tensor of the file (of MIN_SHARED_BYTES or more: the weights), both sessions
    assert set(owner._values) == {(o, n, d.str, shape) for _, o, n, d, shape in found[0].values()
                                  if n >= MIN_SHARED_BYTES} != set()
    owner.close()


@pytest.fixture(scope="module")
def group_export(tmp_path_factory):
    parts, _ = _parts()
    bundle = ModelBundle("toy", {"denoiser": parts["plain"], "denoiser_tdtm": parts["merged"]})
    out = tmp_path_factory.mktemp("group") / "toy"
    staging, _ = stage_export(bundle, ["onnx"], out, ExportOptions(), progress=False)
    finalize(staging)
    return out, {a.part: a for a in read_manifest(out).artifacts}


def test_generate_reader_shares_a_groups_weights(group_export, monkeypatch):
    """generate's ONNX reader opens a group's variants through one owner of the manifest's
    weights file, and they give what ordinary sessions give, bit for bit."""
    folder, artifacts = group_export
    monkeypatch.delenv("TOMOBILE_ORT_SHARED_WEIGHTS", raising=False)
    shared: dict = {}
    runs = {p: video.checked_runner(folder, a, video.RuntimeKind.ONNXRUNTIME, shared) for p, a in artifacts.items()}
    assert list(shared) == [folder / artifacts["denoiser"].weights.path]
    assert set(shared[folder / "denoiser.onnx.data"]._values)  # the variants' tensors, from the one file
    x = np.random.default_rng(1).standard_normal((8, WIDTH)).astype(np.float32)
    for part, run in runs.items():
        np.testing.assert_array_equal(run(x)[0], OnnxRunner(folder / f"{part}.onnx").run([x])[0])


def test_shared_sessions_can_be_turned_off(group_export, monkeypatch):
    folder, artifacts = group_export
    monkeypatch.setenv("TOMOBILE_ORT_SHARED_WEIGHTS", "0")
    shared: dict = {}
    video.checked_runner(folder, artifacts["denoiser"], video.RuntimeKind.ONNXRUNTIME, shared)
    assert shared == {}


def test_same_name_different_tensors_stay_apart(tmp_path):
    """Graphs name their constants independently: `k` is 1s in one graph and 2s in the other,
    both in the one data file. A reader that took tensors by name would give one graph the other's."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from tomobile.export.onnx_format import share_initializers

    w = np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32)
    paths = []
    for i, value in enumerate((1.0, 2.0)):
        graph = helper.make_graph(
            [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Add", ["h", "k"], ["y"])], f"g{i}",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 64])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 64])],
            [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.full((64,), value, np.float32), "k")])
        paths.append(tmp_path / f"g{i}.onnx")
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(paths[-1]))
    share_initializers(paths, tmp_path / "g0.onnx.data", min_bytes=64)
    assert len(external_initializers(paths[1])) == 2
    x = np.random.default_rng(1).standard_normal((4, 64)).astype(np.float32)
    owner = SharedWeightSessions(tmp_path / "g0.onnx.data", threads=1, min_bytes=0)  # k is 256 bytes
    got = [owner.session(p).run([x])[0] for p in paths]
    for path, y in zip(paths, got, strict=True):
        np.testing.assert_array_equal(y, OnnxRunner(path, threads=1).run([x])[0])
    np.testing.assert_allclose(got[1] - got[0], 1.0, atol=1e-5)
    owner.close()
