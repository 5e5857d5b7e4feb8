"""Identity clones and whole-axis slices dropped: XNNPACK refuses a partition that returns its own input."""

from __future__ import annotations

import torch


def drop_identities(program: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    """A clone that keeps its input's strides, or a slice over a whole axis, becomes its input, in place.

    A causal video VAE keeps `x[:, :, -2:].clone()` of each conv input as its cache (Wan's
    decoder); where x has exactly 2 frames that is x itself, and XNNPACK refused the partition
    that returned its own input ("Output node ... is already in the inputs"). A clone that is a
    graph output stays when its input is a graph input or another output (outputs stay distinct)."""
    graph = program.graph_module.graph
    changed = False
    for node in list(graph.nodes):
        outputs = graph.output_node().args[0]
        if not _is_identity(node) or (node in outputs and (node.args[0].op == "placeholder" or node.args[0] in outputs)):
            continue
        node.replace_all_uses_with(node.args[0])
        graph.erase_node(node)
        changed = True
    if changed:
        program.graph_module.recompile()
    return program


def _is_identity(node: torch.fx.Node) -> bool:
    aten = torch.ops.aten
    if node.op != "call_function" or not node.args or not isinstance(node.args[0], torch.fx.Node):
        return False
    if node.target == aten.clone.default:  # a copy with its input's strides (a reshape's clone of a permute has others)
        src, out = node.args[0].meta.get("val"), node.meta.get("val")
        return src is not None and out is not None and src.stride() == out.stride()
    if node.target == aten.slice.Tensor:
        step = node.args[4] if len(node.args) > 4 else 1
        return step == 1 and tuple(node.args[0].meta["val"].shape) == tuple(node.meta["val"].shape)
    return False
