"""split as slices: XNNPACK delegates slices, not split_with_sizes."""

from __future__ import annotations

import operator

import torch


def _pieces(node) -> tuple[object, int, list[int]] | None:
    """(input, dim, piece sizes) of a split or split_with_sizes node, or None for other nodes."""
    aten = torch.ops.aten
    if node.target not in (aten.split.Tensor, aten.split_with_sizes.default):
        return None
    x, split = node.args[0], node.args[1]
    dim = node.args[2] if len(node.args) > 2 else node.kwargs.get("dim", 0)
    size = x.meta["val"].shape[dim]
    if isinstance(split, int):  # split.Tensor: pieces of `split`, the last one shorter
        return x, dim, [min(split, size - start) for start in range(0, size, split)]
    return x, dim, list(split)


def split_as_slices(program: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    """Replace each split whose pieces are read by index (diffusers' GEGLU chunks its projection in
    two; export decomposes chunk into split) with one slice per piece, in place: lowered, the split
    became split_with_sizes_copy, which XNNPACK leaves to a portable kernel (a partition break in
    every transformer block)."""
    aten = torch.ops.aten
    graph = program.graph_module.graph
    changed = False
    for node in list(graph.nodes):
        found = _pieces(node)
        if found is None or not all(u.target is operator.getitem for u in node.users):
            continue
        x, dim, sizes = found
        starts = [sum(sizes[:i]) for i in range(len(sizes))]
        for user in list(node.users):
            i = user.args[1]
            with graph.inserting_before(user):
                piece = graph.call_function(aten.slice.Tensor, (x, dim, starts[i], starts[i] + sizes[i]))
            user.replace_all_uses_with(piece)
            graph.erase_node(user)
        graph.erase_node(node)
        changed = True
    if changed:
        graph.lint()
        program.graph_module.recompile()
    return program
