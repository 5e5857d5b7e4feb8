"""validate reads only well-formed manifests and only paths inside the export folder (issue 13:
bug 6's manifest cases and the absolute-path rough edge)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes import fake_export

from tomobile.runtime.manifest import ManifestError, inside, load_manifest
from tomobile.runtime.validate import validate_dir


def _with_manifest(folder: Path, data) -> Path:
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps(data))
    return folder


@pytest.mark.parametrize("data,needle", [
    ([1, 2, 3], "JSON list, not an object"),
    ({}, "no 'tomobile_manifest' key"),
    ({"tomobile_manifest": 1}, "'parts' is missing"),
])
def test_wrong_shapes_are_named(tmp_path: Path, data, needle):
    with pytest.raises(ManifestError, match=needle):
        load_manifest(_with_manifest(tmp_path / "x", data))


@pytest.mark.parametrize("artifact,needle", [
    ({"part": "model", "path": "model.onnx", "sha256": "0"}, "artifacts\\[0\\] has no 'format'"),
    ({"format": "tflite", "part": "model", "path": "model.onnx", "sha256": "0"}, "format 'tflite'"),
    ({"format": "onnx", "part": "other", "path": "model.onnx", "sha256": "0"}, "names part 'other'"),
    ({"format": "onnx", "part": "model", "path": "/etc/passwd", "sha256": "0"}, "relative and inside"),
    ({"format": "onnx", "part": "model", "path": "../model.onnx", "sha256": "0"}, "relative and inside"),
])
def test_bad_artifact_entries_are_named(tmp_path: Path, artifact, needle):
    folder = fake_export(tmp_path / "x", artifacts=[artifact])
    with pytest.raises(ManifestError, match=needle):
        validate_dir(folder, progress=False)


def test_a_link_out_of_the_folder_is_refused(tmp_path: Path):
    (tmp_path / "outside.onnx").write_bytes(b"x")
    folder = fake_export(tmp_path / "x")
    (folder / "model.onnx").unlink()
    (folder / "model.onnx").symlink_to(tmp_path / "outside.onnx")
    with pytest.raises(ManifestError, match="leads out of"):
        inside(folder, "model.onnx")
    assert inside(folder, "test_vectors/model.npz") == folder / "test_vectors" / "model.npz"


def test_a_well_formed_manifest_loads(tmp_path: Path):
    assert load_manifest(fake_export(tmp_path / "x"))["model"] == "vit-tiny"
