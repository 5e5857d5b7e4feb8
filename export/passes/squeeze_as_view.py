"""Edge pass: squeeze_copy as view_copy."""

from __future__ import annotations

from torch.fx.passes.infra.pass_base import PassResult

from .rewrite import rewrite_edge


def squeeze_as_view(graph_module) -> PassResult:
    """A squeeze_copy (unit axes dropped) becomes a view_copy of the output's shape: XNNPACK
    delegates views and has no squeeze."""
    return rewrite_edge(graph_module, _view)


def _view(graph, node):
    from executorch.exir.dialects._ops import ops as exir_ops

    squeezes = (exir_ops.edge.aten.squeeze_copy.dims, exir_ops.edge.aten.squeeze_copy.dim)
    if node.op != "call_function" or node.target not in squeezes:
        return None
    return graph.call_function(exir_ops.edge.aten.view_copy.default, (node.args[0], list(node.meta["val"].shape)))
