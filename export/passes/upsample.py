"""Nearest upsampling by whole factors as concatenations and views."""

from __future__ import annotations

import torch

from .rewrite import rewrite_program


def _factors(node) -> tuple[int, int] | None:
    """(kh, kw) when the node's output is the input repeated kh x kw times, else None."""
    (_, _, h, w), (_, _, oh, ow) = node.args[0].meta["val"].shape, node.meta["val"].shape
    if oh % h or ow % w or not 2 <= oh // h <= 5 or not 2 <= ow // w <= 5:
        return None  # not whole factors XNNPACK's cat (2 to 5 inputs) can spell
    return oh // h, ow // w


def upsample_as_concat(program: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    """Replace each nearest 2-D upsampling by whole factors (diffusers' Upsample2D: 2 x 2) with
    views and concatenations of 4-D tensors, in place: XNNPACK has no nearest upsampling (a portable
    kernel, a partition break in every up block) and delegates both. x (N, C, H, W):
    (N*C, H, W, 1) -> cat kw copies on the last axis -> (N*C, H, 1, W*kw) -> cat kh copies on axis 2
    -> (N, C, H*kh, W*kw): out[i, j] = x[i // kh, j // kw], as nearest upsampling."""
    return rewrite_program(program, _concat)


def _concat(graph: torch.fx.Graph, node: torch.fx.Node) -> torch.fx.Node | None:
    aten = torch.ops.aten
    if node.target is not aten.upsample_nearest2d.vec or (factors := _factors(node)) is None:
        return None
    x, (kh, kw) = node.args[0], factors
    n, c, h, w = x.meta["val"].shape

    def op(target, *args):
        return graph.call_function(target, args)

    # one view node per copy: XNNPACK's cat takes 2 to 5 distinct input nodes, not one node twice
    cols = op(aten.cat.default, [op(aten.view.default, x, [n * c, h, w, 1]) for _ in range(kw)], 3)  # (N*C, H, W, kw)
    rows = op(aten.cat.default, [op(aten.view.default, cols, [n * c, h, 1, w * kw]) for _ in range(kh)],
              2)  # (N*C, H, kh, W*kw)
    return op(aten.view.default, rows, [n, c, h * kh, w * kw])  # (N, C, H*kh, W*kw)
