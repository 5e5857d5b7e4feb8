"""`tomobile export` / `validate` end to end on vit-tiny, and one-line errors on bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tomobile.cli.main import main


def test_export_writes_artifacts_manifest_and_validation(vit_tiny_export: Path):
    manifest = json.loads((vit_tiny_export / "manifest.json").read_text())
    assert {a["format"] for a in manifest["artifacts"]} == {"onnx", "coreml", "executorch"}
    for a in manifest["artifacts"]:
        assert (vit_tiny_export / a["path"]).exists() and a["bytes"] > 0 and len(a["sha256"]) == 64
    assert manifest["plan"]["tokens_per_layer"] == [65, 57, 49, 41, 33]
    assert manifest["parts"]["model"]["inputs"] == [{"name": "pixel_values", "shape": [1, 3, 32, 32],
                                                     "dtype": "float32"}]
    checks = manifest["validation"]["checks"]
    assert manifest["validation"]["passed"]
    ran = {c["artifact"]: c for c in checks}
    assert ran["model.onnx"]["status"] == "pass" and ran["model.onnx"]["max_abs_error"] <= 1e-4
    assert ran["model.pte"]["status"] == "pass" and ran["model.pte"]["max_abs_error"] <= 1e-4
    assert ran["model.mlpackage"]["status"] == "needs macOS"
    assert manifest["tools"]["torch"].startswith("2.13.0")
    assert not list(vit_tiny_export.parent.glob(".vit-tiny.*")), "staging folder left behind"


def test_validate_passes_then_catches_corruption(vit_tiny_export: Path, tmp_path: Path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(vit_tiny_export, copy)
    assert main(["-q", "validate", str(copy)]) == 0
    assert "validation PASSED" in capsys.readouterr().out
    pte = copy / "model.pte"
    data = bytearray(pte.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pte.write_bytes(bytes(data))
    assert main(["-q", "validate", str(copy)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tomobile: error:") and "sha256" in err and "\n" not in err


def test_validate_fails_on_wrong_numbers(vit_tiny_export: Path, tmp_path: Path, capsys):
    """A reference that disagrees with the artifacts must fail validation with exit code 1."""
    from tomobile.runtime.manifest import sha256_path, write_manifest

    copy = tmp_path / "copy"
    shutil.copytree(vit_tiny_export, copy)
    vectors = copy / "test_vectors" / "model.npz"
    data = dict(np.load(vectors))
    data["seeded.output.logits"] = data["seeded.output.logits"] + 1e-2
    np.savez(vectors, **data)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["test_vectors"]["model"] = sha256_path(vectors)
    write_manifest(copy, manifest)
    assert main(["-q", "validate", str(copy)]) == 1
    assert "validation FAILED" in capsys.readouterr().out


@pytest.mark.parametrize("argv,needle", [
    (["export", "no-such-model", "--out", "{out}"], "unknown model 'no-such-model'; built-in models:"),
    (["export", "vit-tiny", "--format", "onnx,tflite", "--out", "{out}"], "--format: unknown format 'tflite'; formats: onnx"),
    (["export", "vit-tiny", "--merge", "tome:r=abc", "--out", "{out}"], "not an integer"),
    (["export", "vit-tiny", "--merge", "tome:r=40", "--out", "{out}"], "allows r <= 32"),
    (["export", "{bad}", "--out", "{out}"], "no model_type"),
    (["validate", "{missing}"], "is not a folder"),
    (["export", "vit-tiny", "--tdtm-positions", "original", "--out", "{out}"],
     "--tdtm-positions applies only to video-dit-tiny (the models with TDTM modes), not to vit-tiny"),
    (["export", "{bad}", "--tdtm-odd", "keep", "--out", "{out}"],
     "--tdtm-odd applies only to ltx-tiny, ltx-video, video-dit-tiny, wan-tiny, wan21-t2v-1.3b"),
    (["export", "video-dit-micro", "--tdtm-odd", "keep", "--out", "{out}"],
     "--tdtm-odd applies only to ltx-tiny, ltx-video, video-dit-tiny, wan-tiny, wan21-t2v-1.3b (the models with TDTM "
     "modes), not to video-dit-micro"),
    (["export", "vit-tiny", "--split", "blocks", "--out", "{out}"], "video-dit-tiny, video-dit-micro, video-dit-large"),
    (["export", "video-dit-tiny", "--tdtm-odd", "drop", "--out", "{out}"], "bad --tdtm-odd value 'drop'; allowed: original, keep"),
])
def test_bad_input_is_one_line_error_and_nothing_written(tmp_path: Path, argv, needle):
    bad = tmp_path / "badmodel"
    bad.mkdir()
    (bad / "config.json").write_text("{}")
    out = tmp_path / "out"
    argv = [a.format(out=out, bad=bad, missing=tmp_path / "missing") for a in argv]
    proc = subprocess.run([sys.executable, "-m", "tomobile.cli", "-q", *argv], capture_output=True, text=True)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("tomobile: error:") and needle in last, proc.stderr
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_models_lists_builtins(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in ("vit-b16", "minilm-l6", "vit-tiny", "deit-tiny", "clip-vit-tiny"):
        assert name in out


def test_fp16_executorch_passes_by_psnr(tmp_path: Path):
    out = tmp_path / "fp16"
    assert main(["-q", "export", "vit-tiny", "--merge", "tome:r=8", "--format", "executorch",
                 "--precision", "fp16", "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    (artifact,) = manifest["artifacts"]
    assert artifact["precision"] == "fp16" and artifact["float_io"] == "float16"
    (check,) = manifest["validation"]["checks"]
    assert check["status"] == "pass" and check["psnr_db"] >= 35.0
