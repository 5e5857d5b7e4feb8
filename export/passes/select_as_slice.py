"""Edge pass: select_copy as a slice and a view."""

from __future__ import annotations

from torch.fx.passes.infra.pass_base import PassResult

from .rewrite import rewrite_edge


def select_as_slice(graph_module) -> PassResult:
    """x.select(dim, i) -> x[i:i+1] along dim, then a view without that axis (a class-token pick):
    XNNPACK delegates slice and view, and has no select."""
    return rewrite_edge(graph_module, _slice)


def _slice(graph, node):
    from executorch.exir.dialects._ops import ops as exir_ops

    if node.op != "call_function" or node.target != exir_ops.edge.aten.select_copy.int:
        return None
    src, dim, index = node.args
    shape = list(src.meta["val"].shape)
    dim, index = dim % len(shape), index % shape[dim]
    piece = graph.call_function(exir_ops.edge.aten.slice_copy.Tensor, (src, dim, index, index + 1, 1))
    piece.meta = dict(node.meta)
    piece.meta["val"] = src.meta["val"].narrow(dim, index, 1)
    return graph.call_function(exir_ops.edge.aten.view_copy.default, (piece, list(node.meta["val"].shape)))
