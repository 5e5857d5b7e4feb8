"""Means XNNPACK does not take, as ops it does: over the last axis a matmul with a 1/C column; over
one short axis (TDTM's frame pairs) its slices added times 1/n. XNNPACK averages only 4-D tensors
over their last two axes; those means, and every other one, stay as they are."""

from __future__ import annotations

import functools

import torch

SHORT_AXIS = 8  # the longest axis a mean is spelled out along, slice by slice


def mean(x, dim=None, keepdim: bool = False, dtype=None):
    """x.mean(dim) as a matmul (last axis) or a sum of slices (one axis of at most SHORT_AXIS; for
    2, the very number torch's mean gives); NotImplemented (the op stays) for any other mean."""
    dims = [d % x.dim() for d in (dim if dim is not None else range(x.dim()))]
    if dtype is not None or len(dims) != 1:
        return NotImplemented
    axis = dims[0]
    if axis == x.dim() - 1:
        avg = torch.full((x.shape[-1], 1), 1.0 / x.shape[-1], dtype=x.dtype)  # (C, 1), folded into a constant later
        y = x @ avg  # (..., 1)
    elif x.shape[axis] <= SHORT_AXIS:
        y = functools.reduce(torch.add, (x.narrow(axis, i, 1) for i in range(x.shape[axis]))) * (1.0 / x.shape[axis])
    else:
        return NotImplemented
    return y if keepdim else y.squeeze(axis)


MEANS_AS_MATMULS_AND_SUMS = {torch.ops.aten.mean.dim: mean}  # a decomposition table entry
