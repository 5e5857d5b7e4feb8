"""Edge pass: expand_copy that adds no elements as view_copy."""

from __future__ import annotations

from torch.fx.passes.infra.pass_base import PassResult


def expand_as_view(graph_module) -> PassResult:
    """An expand_copy that adds no elements ((1, N, M) -> (1, N, M), (N, M) -> (1, N, M), left by
    matmul broadcasting) becomes a view_copy: XNNPACK delegates views, and has no expand."""
    from executorch.exir.dialects._ops import ops as exir_ops

    graph, changed = graph_module.graph, False
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target != exir_ops.edge.aten.expand_copy.default:
            continue
        src, out = node.args[0], node.meta["val"]
        if src.meta["val"].numel() != out.numel():
            continue  # a real broadcast
        with graph.inserting_before(node):
            view = graph.call_function(exir_ops.edge.aten.view_copy.default, (src, list(out.shape)))
        view.meta = dict(node.meta)
        node.replace_all_uses_with(view)
        graph.erase_node(node)
        changed = True
    graph_module.recompile()
    return PassResult(graph_module, changed)
