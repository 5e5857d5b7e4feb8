"""Constant subgraphs folded into static weights, each with storage of its own."""

from __future__ import annotations

import torch


def fold_constants(program: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    """Fold every subgraph of constants (a constant built in forward must be a static weight for
    XNNPACK's matmuls), ExecuTorch's constant_prop_pass, then give folded views storage of their own.

    Quantised weights stay int8 behind their dequantize node: folded, they would become float
    weights and XNNPACK would run the linear in fp32 (an int8 ViT-B/16 .pte came out fp32-sized)."""
    from executorch.exir.passes.constant_prop_pass import constant_prop_pass, get_default_skip_targets_no_quant

    quant = {n.target for n in program.graph.nodes
             if n.op == "call_function" and getattr(n.target, "namespace", "") == "quantized_decomposed"}
    with torch.no_grad():  # folded constants must be leaves (the delegate deep-copies them)
        program = constant_prop_pass(program, custom_skip_targets=quant | get_default_skip_targets_no_quant())
        return _own_storage(program)


def _own_storage(program: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    """Give every folded constant that is a view (a slice of a packed weight, e.g. SigLIP's pool-head
    `in_proj_weight.chunk(3)`, at a non-zero storage offset) storage of its own. Lowered as a view,
    it computed with wrong numbers (siglip-tiny's pooled output 3.6 off): ExecuTorch 1.5.1's
    lowering loses the offset somewhere (not traced further); a copy is right."""
    for name, value in list(program.constants.items()):
        if isinstance(value, torch.Tensor) and is_view(value):
            program.constants[name] = value.detach().clone()
    return program


def is_view(t: torch.Tensor) -> bool:
    return t.storage_offset() != 0 or t.untyped_storage().nbytes() != t.numel() * t.element_size()
