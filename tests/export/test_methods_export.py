"""Every merge method exported through the CLI and validated against eager (<= 1e-4 fp32), with
no ExecuTorch operator left on portable kernels, in one XNNPACK partition (DiffRate: several, a
known gap recorded in docs/methods.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tomobile.cli.main import main

SPECS = {"vit-tiny": {"pitome": "pitome:ratio=0.8", "diffrate": "diffrate:prune=65,60,50,40,merge=65,55,45,30"},
         "deit-tiny": {"pitome": "pitome:ratio=0.8", "diffrate": "diffrate:prune=66,60,50,40,merge=66,55,45,30"},
         "siglip-tiny": {"tome": "tome:r=8", "pitome": "pitome:ratio=0.8"},
         "dinov2-tiny": {"tome": "tome:r=8", "pitome": "pitome:ratio=0.8"},
         "dinov2-reg-tiny": {"pitome": "pitome:ratio=0.8", "diffrate": "diffrate:prune=69,60,50,40,merge=69,55,45,30"}}


def _export(tmp_path: Path, model: str, spec: str, formats: str) -> dict:
    out = tmp_path / "out"
    assert main(["-q", "export", model, "--merge", spec, "--format", formats, "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["merge"]["method"] == spec.split(":")[0] == manifest["plan"]["method"]
    assert manifest["validation"]["passed"]
    for check in manifest["validation"]["checks"]:
        if check["status"] != "needs macOS":
            assert check["status"] == "pass" and check["max_abs_error"] <= 1e-4, check
    for artifact in manifest["artifacts"]:
        if artifact["format"] == "executorch":
            assert artifact["operators"] == [], artifact
            assert artifact["partitions"] == 1 or spec.startswith("diffrate:"), artifact
    return manifest


@pytest.mark.parametrize("method", ["pitome", "diffrate"])
def test_vit_tiny_exports_and_validates(tmp_path, method):
    manifest = _export(tmp_path, "vit-tiny", SPECS["vit-tiny"][method], "onnx,executorch")
    assert manifest["plan"]["tokens_per_layer"][-1] < 65


@pytest.mark.slow  # reason: every method x model to all three formats, minutes on 2 cores
@pytest.mark.parametrize("model,method", [(m, k) for m, specs in SPECS.items() for k in specs])
def test_every_method_exports_to_every_format(tmp_path, model, method):
    manifest = _export(tmp_path, model, SPECS[model][method], "onnx,coreml,executorch")
    assert {a["format"] for a in manifest["artifacts"]} == {"onnx", "coreml", "executorch"}
