"""What a model or a format does beyond its artifacts comes from the object handed to the
pipeline, not from its name: a bundle's int8 companions and app contract, an exporter's float16
I/O, int8 companion writer and weight-group writer."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from fakes import tiny_bundle

from tomobile.export.output import discard
from tomobile.export.pipeline import stage_export
from tomobile.export.registry import ExportOptions, exporters
from tomobile.graphs.models.video_zoo import MODEL_NAME


def test_an_int8_companion_is_written_for_any_bundle_that_asks(tmp_path: Path):
    bundle = dataclasses.replace(tiny_bundle(), int8_companions=("model",))
    staging, manifest = stage_export(bundle, ["onnx", "executorch"], tmp_path / "out", ExportOptions(), progress=False)
    companions = [a for a in manifest["artifacts"] if "companion_of" in a]
    assert [(a["format"], a["path"], a["companion_of"], a["precision"]) for a in companions] == [
        ("onnx", "model.int8.onnx", "model.onnx", "int8")]  # ExecuTorch's exporter writes none
    assert (staging.path / "model.int8.onnx").is_file() and companions[0]["quantize"].startswith("int8 weights")
    discard(staging)


def test_a_bundle_that_asks_for_nothing_gets_nothing_whatever_its_name(tmp_path: Path):
    """video-dit-tiny's name no longer brings its contract or companion: the bundle's fields do."""
    bundle = dataclasses.replace(tiny_bundle(), name=MODEL_NAME)
    staging, manifest = stage_export(bundle, ["onnx"], tmp_path / "out", ExportOptions(), progress=False)
    assert [a["path"] for a in manifest["artifacts"]] == ["model.onnx"] and manifest["files"] == {}
    assert not (staging.path / "test_vectors" / "contract.json").exists()
    discard(staging)


def test_the_video_bundle_asks_for_its_companion_and_contract():
    from tomobile.graphs.models.video_zoo import build_video_dit_tiny
    from tomobile.graphs.spec.config import MergeConfig

    bundle = build_video_dit_tiny(MergeConfig())
    assert bundle.int8_companions == ("text_encoder",) and bundle.app_contract
    assert not tiny_bundle().app_contract and tiny_bundle().int8_companions == ()


def test_float_io_and_writers_are_the_exporters():
    fp16 = ExportOptions(precision="fp16")
    known = exporters()
    assert {n: e.float_io(e.options_for(fp16)) for n, e in known.items()} == {
        "onnx": "float32", "executorch": "float16", "coreml": "float32", "coreai": "float16"}
    assert all(e.float_io(e.options_for(ExportOptions())) == "float32" for e in known.values())
    assert [n for n, e in known.items() if e.int8_companion is not None] == ["onnx"]
    assert all(e.export_group is not None for e in known.values())  # every format stores a group's weights once
    assert {n: e.suffix for n, e in known.items()} == {"onnx": ".onnx", "executorch": ".pte", "coreml": ".mlpackage",
                                                       "coreai": ".aimodel"}
