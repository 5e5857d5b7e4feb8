"""x ** 2 and x ** 3 as products of x with itself."""

from __future__ import annotations

import torch


def pow_as_products(program: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    """Replace each x**2 and x**3 with products, in place: HF's gelu_new and gelu_fast write the
    cube with pow, which XNNPACK leaves to a portable kernel in fp16 (3 partitions); a product of x
    with itself is the same number and stays delegated."""
    aten = torch.ops.aten
    graph = program.graph_module.graph
    changed = False
    for node in list(graph.nodes):
        if node.target is not aten.pow.Tensor_Scalar or node.args[1] not in (2, 3):
            continue
        x = node.args[0]
        with graph.inserting_before(node):
            out = graph.call_function(aten.mul.Tensor, (x, x))
            if node.args[1] == 3:
                out = graph.call_function(aten.mul.Tensor, (out, x))
        node.replace_all_uses_with(out)
        graph.erase_node(node)
        changed = True
    if changed:
        graph.lint()
        program.graph_module.recompile()
    return program
