"""Edge pass: expand_copy that adds no elements as view_copy."""

from __future__ import annotations

from torch.fx.passes.infra.pass_base import PassResult

from .rewrite import rewrite_edge


def expand_as_view(graph_module) -> PassResult:
    """An expand_copy that adds no elements ((1, N, M) -> (1, N, M), (N, M) -> (1, N, M), left by
    matmul broadcasting) becomes a view_copy: XNNPACK delegates views, and has no expand."""
    return rewrite_edge(graph_module, _view)


def _view(graph, node):
    from executorch.exir.dialects._ops import ops as exir_ops

    if node.op != "call_function" or node.target != exir_ops.edge.aten.expand_copy.default:
        return None
    src, out = node.args[0], node.meta["val"]
    if src.meta["val"].numel() != out.numel():
        return None  # a real broadcast
    return graph.call_function(exir_ops.edge.aten.view_copy.default, (src, list(out.shape)))
