"""x ** 2 and x ** 3 as products of x with itself."""

from __future__ import annotations

import torch

from .rewrite import rewrite_program


def pow_as_products(program: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    """Replace each x**2 and x**3 with products, in place: HF's gelu_new and gelu_fast write the
    cube with pow, which XNNPACK leaves to a portable kernel in fp16 (3 partitions); a product of x
    with itself is the same number and stays delegated."""
    return rewrite_program(program, _products)


def _products(graph: torch.fx.Graph, node: torch.fx.Node) -> torch.fx.Node | None:
    aten = torch.ops.aten
    if node.target is not aten.pow.Tensor_Scalar or node.args[1] not in (2, 3):
        return None
    x = node.args[0]
    out = graph.call_function(aten.mul.Tensor, (x, x))
    return graph.call_function(aten.mul.Tensor, (out, x)) if node.args[1] == 3 else out
