"""repeat_interleave as a broadcasting multiply by ones and a reshape: decomposed, it is an expand
that adds elements, which XNNPACK leaves out (it delegates a broadcast inside a binary op)."""

from __future__ import annotations

import torch


def repeat_interleave(x, repeats: int, dim: int | None = None, output_size: int | None = None):
    """repeat_interleave by an int along `dim` as a broadcasting multiply by ones and a reshape
    (LTX-Video's attention mask per head)."""
    if dim is None:
        x, dim = x.flatten(), 0
    dim = dim % x.dim()
    shape = list(x.shape)
    ones = torch.ones([*shape[: dim + 1], repeats, *shape[dim + 1:]], dtype=x.dtype)
    grown = x.unsqueeze(dim + 1) * ones  # (..., n, repeats, ...)
    return grown.reshape([*shape[:dim], shape[dim] * repeats, *shape[dim + 1:]])


# a decomposition table entry
REPEAT_INTERLEAVE_AS_BROADCAST = {torch.ops.aten.repeat_interleave.self_int: repeat_interleave}
