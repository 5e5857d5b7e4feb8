"""ONNX files: weights past the 2 GB limit go to `model.onnx_data`, the name hub-style loaders expect."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import torch

from tomobile.export.onnx_format import save_onnx
from tomobile.runtime.manifest import sha256_path


def _onnx_model():
    module = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 4)).eval()
    x = torch.randn(1, 8, generator=torch.Generator().manual_seed(0))
    program = torch.export.export(module, (x,))
    with contextlib.redirect_stdout(io.StringIO()):
        onnx_program = torch.onnx.export(program, input_names=["x"], output_names=["y"], dynamo=True)
    with torch.no_grad():
        return onnx_program.model, x, module(x)


def _run(path, x):
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x.numpy()})[0]


def test_small_model_is_one_file(tmp_path):
    model, x, want = _onnx_model()
    assert save_onnx(model, tmp_path / "model.onnx") == {}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]
    np.testing.assert_allclose(_run(tmp_path / "model.onnx", x), want.numpy(), atol=1e-6)


def test_weights_past_the_threshold_go_to_model_onnx_data(tmp_path):
    model, x, want = _onnx_model()
    entry = save_onnx(model, tmp_path / "model.onnx", threshold=0)
    data = tmp_path / "model.onnx_data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "model.onnx_data"]
    assert entry == {"external_data": {"path": "model.onnx_data", "sha256": sha256_path(data),
                                       "bytes": data.stat().st_size}}
    assert data.stat().st_size >= 8 * 16 * 4  # the weight matrix (small tensors stay inline)
    np.testing.assert_allclose(_run(tmp_path / "model.onnx", x), want.numpy(), atol=1e-6)
