"""ONNX exporter: torch.export program -> dynamo ONNX exporter -> model.onnx (fp32)."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import torch

from .opcheck import UnsupportedOpError, check_graph
from .registry import ExportOptions, PartInfo, register_exporter


@register_exporter("onnx", ".onnx", precisions=("fp32",))
def export_onnx(get_program, part: PartInfo, out: Path, options: ExportOptions) -> dict:
    program = get_program("fp32")
    problems = check_graph(program, "onnx")
    if problems:
        raise UnsupportedOpError(part.stem, "onnx", problems)
    with contextlib.redirect_stdout(io.StringIO()):  # the exporter prints its progress steps
        onnx_program = torch.onnx.export(
            program, input_names=list(part.input_names), output_names=list(part.output_names), dynamo=True,
            verbose=False,
        )
        onnx_program.save(str(out))
    return {"precision": "fp32"}


def quantize_int8(src: Path, dst: Path) -> None:
    """Dynamic int8 quantisation of an fp32 ONNX file (weights int8, activations quantised per
    run): ONNX Runtime's quantize_dynamic on the MatMul/Gemm weights."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
