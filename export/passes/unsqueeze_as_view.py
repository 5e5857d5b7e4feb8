"""Edge pass: unsqueeze_copy as view_copy."""

from __future__ import annotations

from torch.fx.passes.infra.pass_base import PassResult

from .rewrite import rewrite_edge


def unsqueeze_as_view(graph_module) -> PassResult:
    """An unsqueeze_copy (a new axis of size 1) becomes a view_copy of the output's shape: XNNPACK
    delegates views and has no unsqueeze."""
    return rewrite_edge(graph_module, _view)


def _view(graph, node):
    from executorch.exir.dialects._ops import ops as exir_ops

    if node.op != "call_function" or node.target != exir_ops.edge.aten.unsqueeze_copy.default:
        return None
    return graph.call_function(exir_ops.edge.aten.view_copy.default, (node.args[0], list(node.meta["val"].shape)))
