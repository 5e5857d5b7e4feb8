"""validate reads only well-formed manifests and only paths inside the export folder (issue 13:
bug 6's manifest cases and the absolute-path rough edge)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes import fake_export

from tomobile.runtime.manifest import ManifestError, inside
from tomobile.runtime.manifest_reader import TensorEntry, load_manifest, read_manifest
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


_ONNX = {"format": "onnx", "part": "model", "path": "model.onnx", "sha256": "0"}
_SPLIT_PART = {"name": "a", "inputs": [{"name": "x", "shape": [1]}], "outputs": [{"name": "y", "shape": [1]}],
               "files": {"onnx": {"path": "a.onnx", "sha256": "0", "bytes": 1, "total_bytes": 1}}}


@pytest.mark.parametrize("changes,needle", [
    ({"artifacts": [{**_ONNX, "weight_group": "g"}]}, "names weight group 'g', which 'weight_groups' lacks"),
    ({"weight_groups": {"g": {"parts": ["model", "other"], "weights": {"onnx": "g.onnx.data"}}}},
     r"weight_groups\['g'\] names part 'other'"),
    ({"weight_groups": {"g": {"parts": ["model"], "weights": {"tflite": "g.bin"}}}}, "format 'tflite'"),
    ({"artifacts": [_ONNX, {**_ONNX, "path": "model.int8.onnx", "companion_of": "elsewhere.onnx"}]},
     "companion of 'elsewhere.onnx', which no onnx artifact of model is"),
    ({"artifacts": [{**_ONNX, "weights": {"path": "../w.data", "sha256": "0"}}]}, "relative and inside"),
    ({"artifacts": [{**_ONNX, "bytes": "12"}]}, r"artifacts\[0\].bytes is not an integer"),
    ({"artifacts": [{**_ONNX, "partitions": True}]}, r"artifacts\[0\].partitions is not an integer"),
    ({"split": {"kind": "blocks", "sequences": {"model": ["a", "b"]}, "parts": [_SPLIT_PART]}},
     r"split.sequences\['model'\] must list parts that split.parts holds"),
    ({"split": {"kind": "blocks", "sequences": {"denoiser": ["a"]}, "parts": [_SPLIT_PART]}},
     "names variant 'denoiser', which 'parts' lacks"),
    ({"split": {"kind": "blocks", "sequences": {"model": ["a"]},
                "parts": [{**_SPLIT_PART, "files": {"onnx": {"path": "a.onnx", "sha256": "0"}}}]}},
     r"split.parts\[0\].files.onnx has no 'total_bytes' integer"),
    ({"model_config": {"caption_len": 8, "channels": 3, "frames": 8}}, "model_config has no 'size' integer"),
    ({"sampler": {"steps": 30, "guidance": "4", "shift": 2.0}}, "sampler.guidance is not a number"),
])
def test_references_and_types_are_checked_when_decoded(tmp_path: Path, changes, needle):
    """A reader never meets a reference to something the manifest lacks, or a value of another type."""
    with pytest.raises(ManifestError, match=needle) as err:
        read_manifest(fake_export(tmp_path / "x", **changes))
    assert "\n" not in str(err.value) and "manifest.json" in str(err.value)  # one line naming the file


def test_a_decoded_manifest_holds_types(tmp_path: Path):
    split = {"kind": "blocks", "sequences": {"model": ["a"]}, "parts": [_SPLIT_PART]}
    folder = fake_export(tmp_path / "x", split=split, model_config={"caption_len": 8, "channels": 3, "frames": 8,
                                                                     "size": 32}, merge_spec="tome:r=8")
    manifest = read_manifest(folder)
    onnx = manifest.artifact("onnx", "model")
    assert onnx is not None and onnx.path == "model.onnx" and onnx.label == "model.onnx" and onnx.weights is None
    assert manifest.artifact("executorch", "model") is None
    assert manifest.parts["model"].inputs == (TensorEntry("pixel_values", (1, 3, 32, 32)),)
    assert manifest.split.sequences == {"model": ("a",)} and manifest.split.parts[0].files["onnx"].total_bytes == 1
    assert manifest.video.latent_shape == (1, 3, 8, 32, 32) and manifest.video.tdtm_positions is None
    assert manifest.extra == {"merge_spec": "tome:r=8"} and manifest.folder == folder
