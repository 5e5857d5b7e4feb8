"""Edge pass: select_copy as a slice and a view."""

from __future__ import annotations

from torch.fx.passes.infra.pass_base import PassResult


def select_as_slice(graph_module) -> PassResult:
    """x.select(dim, i) -> x[i:i+1] along dim, then a view without that axis (a class-token pick):
    XNNPACK delegates slice and view, and has no select."""
    from executorch.exir.dialects._ops import ops as exir_ops

    graph, changed = graph_module.graph, False
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target != exir_ops.edge.aten.select_copy.int:
            continue
        src, dim, index = node.args
        shape = list(src.meta["val"].shape)
        dim, index = dim % len(shape), index % shape[dim]
        with graph.inserting_before(node):
            piece = graph.call_function(exir_ops.edge.aten.slice_copy.Tensor, (src, dim, index, index + 1, 1))
            view = graph.call_function(exir_ops.edge.aten.view_copy.default, (piece, list(node.meta["val"].shape)))
        piece.meta = dict(node.meta)
        piece.meta["val"] = src.meta["val"].narrow(dim, index, 1)
        view.meta = dict(node.meta)
        node.replace_all_uses_with(view)
        graph.erase_node(node)
        changed = True
    graph_module.recompile()
    return PassResult(graph_module, changed)
