"""Static int8 for ExecuTorch: PT2E quantisation with the XNNPACK quantizer, the mobile int8 path.

Only the learned projections (aten.linear, and conv2d for a patch embedding) are quantised: int8
weights per output channel, int8 activations per tensor with ranges observed on calibration
inputs (the seeded inputs, seeds 0..CALIBRATION_SEEDS-1). The merge's 0/1 structure, comparisons
and sums, attention logits and softmax stay float: quantising them would move tokens to other
slots (a quantiser that did so on ONNX gave 6.4 dB). XNNPACK runs the quantised linears and the
float rest in one partition; validation checks PSNR >= 30 dB against fp32 eager.
"""

from __future__ import annotations

import torch

CALIBRATION_SEEDS = 8


def quantize_int8(program: torch.export.ExportedProgram,
                  calibration: tuple[tuple[torch.Tensor, ...], ...]) -> torch.export.ExportedProgram:
    """fp32 program -> program with quantize/dequantize around every linear and conv, calibrated."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    if not calibration:
        raise ValueError("static int8 needs calibration inputs")
    quantizer = XNNPACKQuantizer()
    config = get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False)
    for op in (torch.ops.aten.linear.default, torch.ops.aten.conv2d.default):
        quantizer.set_operator_type(op, config)
    prepared = prepare_pt2e(program.module(), quantizer)  # a fresh graph module: the cached program stays as it is
    with torch.no_grad():
        for inputs in calibration:
            prepared(*inputs)
        converted = convert_pt2e(prepared)
        return torch.export.export(converted, calibration[0], strict=False)
