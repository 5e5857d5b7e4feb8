"""Edge pass: a permute of more than 6 axes on its non-unit axes, so no tensor of more than 6 axes is
left for XNNPACK, which refuses to define one (the whole delegate then fails to load); diffusers'
video unpatchify permutes 8."""

from __future__ import annotations

from torch.fx.passes.infra.pass_base import PassResult

XNN_MAX_AXES = 6  # XNNPACK defines tensors of at most 6 axes


def permute_on_fewer_axes(graph_module) -> PassResult:
    """Each permute of more than 6 axes runs on its non-unit axes between two views; a contiguous
    copy of such a wide view is the view (the graph is functional); chains of views then collapse.
    A graph without a wide tensor is left untouched."""
    from executorch.exir.dialects._ops import ops as exir_ops

    graph = graph_module.graph
    changed = any([_narrow_permute(graph, node, exir_ops) for node in list(graph.nodes)])
    clones = (exir_ops.edge.aten.clone.default, exir_ops.edge.dim_order_ops._clone_dim_order.default)
    for node in list(graph.nodes):
        if node.op == "call_function" and node.target in clones and node.meta["val"].dim() > XNN_MAX_AXES:
            node.replace_all_uses_with(node.args[0])
            graph.erase_node(node)
            changed = True
    if not changed:  # no wide tensor: the graph stays as it is, byte for byte
        return PassResult(graph_module, False)
    view = exir_ops.edge.aten.view_copy.default
    for node in graph.nodes:  # view(view(x)) -> view(x)
        if node.op == "call_function" and node.target == view and getattr(node.args[0], "target", None) == view:
            node.args = (node.args[0].args[0], node.args[1])
            changed = True
    if changed:
        graph.eliminate_dead_code()
        graph_module.recompile()
    return PassResult(graph_module, changed)


def _narrow_permute(graph, node, exir_ops) -> bool:
    """Replace one wide permute_copy by view -> permute of the non-unit axes -> view; False if `node`
    is no such permute."""
    if node.op != "call_function" or node.target != exir_ops.edge.aten.permute_copy.default:
        return False
    src, perm = node.args[0], [d % node.meta["val"].dim() for d in node.args[1]]
    shape = list(src.meta["val"].shape)
    if len(shape) <= XNN_MAX_AXES:
        return False
    kept = [d for d in range(len(shape)) if shape[d] != 1]
    rank = {d: i for i, d in enumerate(kept)}
    order = [rank[d] for d in perm if d in rank]
    view = exir_ops.edge.aten.view_copy.default
    with graph.inserting_before(node):
        squeezed = graph.call_function(view, (src, [shape[d] for d in kept]))
        moved = graph.call_function(exir_ops.edge.aten.permute_copy.default, (squeezed, order))
        back = graph.call_function(view, (moved, list(node.meta["val"].shape)))
    squeezed.meta = {**node.meta, "val": src.meta["val"].reshape([shape[d] for d in kept])}
    moved.meta = {**node.meta, "val": squeezed.meta["val"].permute(order)}
    back.meta = dict(node.meta)
    node.replace_all_uses_with(back)
    graph.erase_node(node)
    return True
