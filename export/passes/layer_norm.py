"""Layer norm as primitive ops (matmuls, rsqrt, arithmetic): XNNPACK has no layer norm."""

from __future__ import annotations

import torch


def layer_norm(x, normalized_shape, weight=None, bias=None, eps: float = 1e-5, cudnn_enable: bool = True):
    """layer_norm over the last axis from ops XNNPACK delegates: means as matmuls with a 1/C column
    (XNNPACK has no layer norm, and averages only 4-D tensors over H and W). In fp16, eps is at
    least fp16's smallest normal number: ViT's 1e-12 rounds to 0 there, and a constant row (DeiT's
    zero-initialised class token) then gave rsqrt(0) = inf and 0 * inf = NaN."""
    if x.dtype == torch.float16:
        eps = max(eps, 2.0**-24)
    c = x.shape[-1]
    avg = torch.full((c, 1), 1.0 / c, dtype=x.dtype)  # (C, 1), folded into a constant later
    centred = x - x @ avg  # (..., C)
    y = centred * torch.rsqrt((centred * centred) @ avg + eps)  # (..., C)
    if weight is not None:
        y = y * weight
    return y + bias if bias is not None else y


LAYER_NORM_AS_MATMULS = {torch.ops.aten.layer_norm.default: layer_norm}  # a decomposition table entry
