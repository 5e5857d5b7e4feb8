"""unbind as slices and reshapes: decomposed, it is split + squeeze, which XNNPACK leaves out
(diffusers' rotary embeddings unbind cosines and sines)."""

from __future__ import annotations

import torch


def unbind(x, dim: int = 0):
    shape = [n for i, n in enumerate(x.shape) if i != dim % x.dim()]
    return [x.narrow(dim, i, 1).reshape(shape) for i in range(x.shape[dim])]


UNBIND_AS_SLICES = {torch.ops.aten.unbind.int: unbind}  # a decomposition table entry
