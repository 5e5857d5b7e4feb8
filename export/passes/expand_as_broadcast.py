"""An expand that grows axes as a broadcasting multiply by ones: XNNPACK has no expand, and delegates
a broadcast inside a binary op (TDTM's copy-back of a merged frame to both frames of its pair)."""

from __future__ import annotations

import math

import torch


def expand(x, size, implicit: bool = False):
    """x.expand(size) as x times ones spanning only the grown axes. An expand that adds no elements
    stays (expand_as_view.py makes it a view on the edge graph), and so does one of integers (the
    merges' gather indices, which no XNNPACK op reads)."""
    size = [n if n != -1 else x.shape[i - (len(size) - x.dim())] for i, n in enumerate(size)]
    if math.prod(size) == x.numel() or not x.is_floating_point():
        return NotImplemented
    shape = [1] * (len(size) - x.dim()) + list(x.shape)
    ones = torch.ones([n if m == 1 and n != 1 else 1 for m, n in zip(shape, size, strict=True)], dtype=x.dtype)
    return x.reshape(shape) * ones  # (*size)


EXPAND_AS_BROADCAST = {torch.ops.aten.expand.default: expand}  # a decomposition table entry
