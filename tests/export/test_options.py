"""Export options are honoured or refused, never dropped (issue 13: bug 2 and options that do not apply)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes import tiny_bundle

from tomobile.export.output import finalize
from tomobile.export.pipeline import stage_export
from tomobile.export.registry import ExportOptions, OptionError, check_options, exporters, get_exporter


def test_each_exporter_declares_what_it_honours():
    known = exporters()
    assert known["onnx"].honours("quantize", "int8") and not known["onnx"].honours("precision", "fp16")
    assert known["executorch"].honours("quantize", "int8")  # static PT2E int8 (XNNPACK quantizer)
    assert known["executorch"].backends == ("xnnpack", "portable")
    assert known["coreml"].honours("precision", "fp16") and not known["coreml"].honours("quantize", "int8")


def test_options_for_keeps_what_a_format_honours_and_resets_the_rest():
    asked = ExportOptions(precision="fp16", quantize="int8", backend="portable")
    assert get_exporter("onnx").options_for(asked) == ExportOptions(None, "fp32", "int8")  # quantize kept (bug 2)
    assert get_exporter("coreml").options_for(asked) == ExportOptions(None, "fp16", None)
    assert get_exporter("executorch").options_for(asked) == ExportOptions("portable", "fp16", "int8")
    assert get_exporter("executorch").options_for(ExportOptions()).backend == "xnnpack"  # its default


@pytest.mark.parametrize("formats,options,needle", [
    (["onnx"], ExportOptions(precision="fp16"), "--precision fp16 applies to executorch, coreml"),
    (["coreml"], ExportOptions(quantize="int8"), r"--quantize int8 applies to (onnx, executorch|executorch, onnx), not to"),
    (["executorch"], ExportOptions(quantize="int8", precision="fp16"), "cannot both apply to executorch"),
    (["onnx", "executorch"], ExportOptions(quantize="int8", backend="portable"), "runs on the xnnpack backend"),
    (["onnx"], ExportOptions(backend="portable"), "--backend portable applies to executorch"),
    (["coreml"], ExportOptions(backend="xnnpack"), "--backend xnnpack applies to executorch"),
])
def test_an_option_no_asked_format_honours_is_refused(formats, options, needle):
    with pytest.raises(OptionError, match=needle):
        check_options(formats, options)


def test_an_option_some_formats_honour_gets_a_note():
    notes = check_options(["onnx", "coreml"], ExportOptions(precision="fp16", quantize="int8"))
    assert notes == ["--precision fp16 applies to coreml, not to onnx", "--quantize int8 applies to onnx, not to coreml"]
    assert check_options(["onnx", "executorch"], ExportOptions()) == []


def test_quantize_survives_precision_and_several_formats(tmp_path: Path):
    """Bug 2: `--quantize int8 --precision fp16 --format onnx,coreml` gave an fp32 ONNX file."""
    out = tmp_path / "out"
    staging, manifest = stage_export(tiny_bundle(), ["onnx", "coreml"], out,
                                     ExportOptions(precision="fp16", quantize="int8"), progress=False)
    finalize(staging)
    by_format = {a["format"]: a for a in json.loads((out / "manifest.json").read_text())["artifacts"]}
    assert by_format["onnx"]["precision"] == "int8" and "quantize" in by_format["onnx"]
    assert by_format["coreml"]["precision"] == "fp16"
    assert manifest["quantize"] == "int8" and manifest["precision"] == "fp16" and manifest["backend"] is None
    import onnx

    types = {t.data_type for t in onnx.load(str(out / "model.onnx")).graph.initializer}
    assert onnx.TensorProto.INT8 in types  # int8 weights really are in the file
