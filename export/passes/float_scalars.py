"""Int scalars in floating-point arithmetic as floats."""

from __future__ import annotations

import torch


def int_scalars_as_floats(program: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    """An int scalar in floating-point arithmetic ((a + b) / 2) becomes a float, in place: lowering
    turns it into an int64 constant and a cast that runs outside XNNPACK."""
    aten = torch.ops.aten
    arith = {aten.add.Tensor, aten.sub.Tensor, aten.mul.Tensor, aten.div.Tensor, aten.rsub.Scalar}
    graph, changed = program.graph_module.graph, False
    for node in graph.nodes:
        val = node.meta.get("val")
        if node.target not in arith or not isinstance(val, torch.Tensor) or not val.is_floating_point():
            continue
        if any(type(a) is int for a in node.args):  # type(a): a bool is no int here, and 2 == 2.0
            node.args, changed = tuple(float(a) if type(a) is int else a for a in node.args), True
    if changed:
        program.graph_module.recompile()
    return program
