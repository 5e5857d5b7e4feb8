"""The int8 text encoder companion: Python runs the fp32 one; validation compares the companion's
token states and clips with the fp32 pipeline and fails one that moved them."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
from fakes import fake_video_export
from onnx import numpy_helper

from tomobile.export.pipeline import sha256_path
from tomobile.runtime.manifest_reader import read_manifest
from tomobile.runtime.report import FAIL, PASS
from tomobile.runtime.text_int8 import CAPTIONS, CLIP_CAPTIONS, check_text_companion, token_cosines
from tomobile.runtime.video import RuntimeKind, artifact_runtime


def _with_companion(folder, tilt: bool):
    """Adds text_encoder.int8.onnx as a companion: a copy, or one whose states point elsewhere (tilt)."""
    path = folder / "text_encoder.int8.onnx"
    shutil.copy(folder / "text_encoder.onnx", path)
    if tilt:
        model = onnx.load(str(path))
        ones = next(t for t in model.graph.initializer if t.name == "ones")
        ones.CopyFrom(numpy_helper.from_array(np.array([[[1e-4, -1e-4, 1e-4, -1e-4]]], np.float32), "ones"))
        onnx.save(model, str(path))
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["sampler"] = {"steps": 4, "guidance": 4.0, "shift": 2.0}
    manifest["artifacts"].append({"format": "onnx", "part": "text_encoder", "path": path.name, "sha256": sha256_path(path),
                                  "precision": "int8", "companion_of": "text_encoder.onnx"})
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder, read_manifest(folder)


def test_token_cosines_count_real_tokens_only():
    ref = np.array([[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]])
    out = np.array([[[2.0, 0.0], [1.0, 0.0], [-1.0, 0.0]]])
    assert np.allclose(token_cosines(ref, out, np.array([[1, 1, 0]])), [1.0, 0.0])


def test_python_keeps_the_fp32_text_encoder(tmp_path):
    folder, _ = _with_companion(fake_video_export(tmp_path / "video"), tilt=True)
    states, _ = artifact_runtime(folder, RuntimeKind.ONNXRUNTIME).encode("a red circle moving left")
    assert (states >= 0).all()  # the tilted companion would give negative entries


def test_a_faithful_companion_passes_and_a_moved_one_fails(tmp_path):
    good = check_text_companion(*_with_companion(fake_video_export(tmp_path / "good"), tilt=False))
    assert [c.status for c in good] == [PASS] * (1 + len(CLIP_CAPTIONS))
    assert good[0].case == f"{len(CAPTIONS)} captions" and "token cosine 1.00000" in good[0].note
    bad = check_text_companion(*_with_companion(fake_video_export(tmp_path / "bad"), tilt=True))
    assert bad[0].status == FAIL and bad[0].artifact == "text_encoder.int8.onnx"
