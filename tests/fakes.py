"""Small stand-ins for the hardening tests: a tiny exportable model that has what broke format
order (a constant made in forward, layer norm, tanh-GELU, attention), and hand-written export
folders (a video-dit-tiny export of tiny ONNX graphs, a manifest of another model) that cost no
real export. Importable from any test module (pytest puts tests/ on sys.path for conftest.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tomobile.graphs.models.exportable import Exportable, ModelBundle, TensorSpec
from tomobile.runtime.manifest import sha256_path


class Tiny(Exportable):
    """x (1, 8, 16) -> y (1, 8, 16). The weight column `w` is built in forward, so torch.export
    lifts it as a constant (`lifted_tensor_0`) that ExecuTorch's constant folding rewrites."""

    input_specs = (TensorSpec("x", (1, 8, 16)),)
    output_names = ("y",)

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.lin = nn.Linear(16, 16)
        with torch.no_grad():  # seeded here: nn.Linear's own init draws from the global generator
            self.lin.weight.copy_(torch.randn(16, 16, generator=gen) * 0.25)
            self.lin.bias.copy_(torch.randn(16, generator=gen) * 0.1)
        self.norm = nn.LayerNorm(16)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        w = torch.tensor([[1.0], [0.5]] * 4)  # (8, 1)
        h = nn.functional.gelu(self.lin(self.norm(x)), approximate="tanh") * w  # (1, 8, 16)
        return (torch.softmax(h @ h.transpose(-1, -2), dim=-1) @ h,)  # (1, 8, 16)


def tiny_bundle() -> ModelBundle:
    return ModelBundle("tiny", {"model": Tiny().eval()}, manifest={"merge_spec": "none"})


VIDEO_CONFIG = {"caption_len": 8, "caption_dim": 4, "channels": 3, "frames": 8, "size": 32}
VIDEO_PARTS = ("text_encoder", "denoiser", "denoiser_tdtm", "denoiser_tome", "denoiser_tdtm_tome")


def _onnx_text_encoder(path: Path) -> None:
    """input_ids, attention_mask (1, L) int64 -> states (1, L, D): ids as floats times a row of ones."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    length, dim = VIDEO_CONFIG["caption_len"], VIDEO_CONFIG["caption_dim"]
    ones = numpy_helper.from_array(np.full((1, 1, dim), 1e-4, np.float32), "ones")
    axes = numpy_helper.from_array(np.array([2], np.int64), "axes")
    nodes = [helper.make_node("Cast", ["input_ids"], ["ids_f"], to=TensorProto.FLOAT),
             helper.make_node("Unsqueeze", ["ids_f", "axes"], ["ids_3d"]),
             helper.make_node("Mul", ["ids_3d", "ones"], ["states"])]
    graph = helper.make_graph(
        nodes, "text", [helper.make_tensor_value_info(n, TensorProto.INT64, [1, length])
                        for n in ("input_ids", "attention_mask")],
        [helper.make_tensor_value_info("states", TensorProto.FLOAT, [1, length, dim])], [ones, axes])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def _onnx_denoiser(path: Path, scale: float) -> None:
    """x (1, 3, T, H, W), t, states, mask, guidance -> velocity = scale * x (the others unused)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    c = VIDEO_CONFIG
    shapes = {"x": [1, c["channels"], c["frames"], c["size"], c["size"]], "t": [1],
              "states": [1, c["caption_len"], c["caption_dim"]], "mask": [1, c["caption_len"]], "guidance": [1]}
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "scale"], ["velocity"])], "denoiser",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in shapes.items()],
        [helper.make_tensor_value_info("velocity", TensorProto.FLOAT, shapes["x"])],
        [numpy_helper.from_array(np.array(scale, np.float32), "scale")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def fake_video_export(folder: Path) -> Path:
    """A folder shaped like `tomobile export video-dit-tiny --format onnx` wrote it, with tiny graphs."""
    from tomobile.graphs.models.text_context import TOKENIZER_FILES, minilm_dir

    folder.mkdir(parents=True)
    _onnx_text_encoder(folder / "text_encoder.onnx")
    for i, stem in enumerate(VIDEO_PARTS[1:]):
        _onnx_denoiser(folder / f"{stem}.onnx", 0.5 + 0.1 * i)
    files = {}
    for name in TOKENIZER_FILES:
        if (minilm_dir() / name).exists():
            shutil.copy(minilm_dir() / name, folder / name)
            files[name] = sha256_path(folder / name)
    manifest = {
        "tomobile_manifest": 1, "model": "video-dit-tiny", "model_config": VIDEO_CONFIG,
        "parts": {p: {"inputs": [{"name": "x", "shape": [1]}], "outputs": [{"name": "y", "shape": [1]}]}
                  for p in VIDEO_PARTS},
        "artifacts": [{"format": "onnx", "part": p, "path": f"{p}.onnx", "sha256": sha256_path(folder / f"{p}.onnx")}
                      for p in VIDEO_PARTS],
        "files": files, "test_vectors": {p: "0" * 64 for p in VIDEO_PARTS},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def fake_export(folder: Path, model: str = "vit-tiny", **changes) -> Path:
    """A well-formed manifest of a one-artifact export of `model`, and its file; `changes` replace
    top-level manifest entries (to make it malformed)."""
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(b"not really onnx")
    (folder / "test_vectors").mkdir()
    (folder / "test_vectors" / "model.npz").write_bytes(b"vectors")
    manifest = {
        "tomobile_manifest": 1, "model": model,
        "parts": {"model": {"inputs": [{"name": "pixel_values", "shape": [1, 3, 32, 32]}],
                            "outputs": [{"name": "logits", "shape": [1, 10]}]}},
        "artifacts": [{"format": "onnx", "part": "model", "path": "model.onnx",
                       "sha256": sha256_path(folder / "model.onnx")}],
        "test_vectors": {"model": sha256_path(folder / "test_vectors" / "model.npz")},
        **changes,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder
