"""What every node-for-node pass does around its own rule: walk the graph once, insert the
replacement before the node it replaces, move the node's users to it, erase the node, recompile."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.fx.passes.infra.pass_base import PassResult

Rule = Callable[[torch.fx.Graph, torch.fx.Node], "torch.fx.Node | None"]


def rewrite_program(program: torch.export.ExportedProgram, rule: Rule) -> torch.export.ExportedProgram:
    """Replace, in place, every node for which `rule(graph, node)` returns a new node (built at the
    node's place); nodes it returns None for stay."""
    graph = program.graph_module.graph
    if _rewrite(graph, rule, copy_meta=False):
        graph.lint()
        program.graph_module.recompile()
    return program


def rewrite_edge(graph_module: torch.fx.GraphModule, rule: Rule) -> PassResult:
    """The same on an edge graph (a transform pass of to_edge_transform_and_lower); the replacement
    takes the replaced node's meta (its value's shape and dtype, which later passes read)."""
    changed = _rewrite(graph_module.graph, rule, copy_meta=True)
    graph_module.recompile()
    return PassResult(graph_module, changed)


def _rewrite(graph: torch.fx.Graph, rule: Rule, copy_meta: bool) -> bool:
    changed = False
    for node in list(graph.nodes):
        with graph.inserting_before(node):
            new = rule(graph, node)
        if new is None:
            continue
        if copy_meta:
            new.meta = dict(node.meta)
        node.replace_all_uses_with(new)
        graph.erase_node(node)
        changed = True
    return changed
