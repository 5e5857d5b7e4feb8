"""Edge pass: unsqueeze_copy as view_copy."""

from __future__ import annotations

from torch.fx.passes.infra.pass_base import PassResult


def unsqueeze_as_view(graph_module) -> PassResult:
    """An unsqueeze_copy (a new axis of size 1) becomes a view_copy of the output's shape: XNNPACK
    delegates views and has no unsqueeze."""
    from executorch.exir.dialects._ops import ops as exir_ops

    graph, changed = graph_module.graph, False
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target != exir_ops.edge.aten.unsqueeze_copy.default:
            continue
        with graph.inserting_before(node):
            view = graph.call_function(exir_ops.edge.aten.view_copy.default,
                                       (node.args[0], list(node.meta["val"].shape)))
        view.meta = dict(node.meta)
        node.replace_all_uses_with(view)
        graph.erase_node(node)
        changed = True
    graph_module.recompile()
    return PassResult(graph_module, changed)
