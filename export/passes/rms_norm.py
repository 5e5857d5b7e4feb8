"""RMS norm as primitive ops (a matmul with a 1/C column, rsqrt, arithmetic): XNNPACK has no RMS norm
(diffusers' video transformers normalise queries and keys with it)."""

from __future__ import annotations

import torch


def rms_norm(x, normalized_shape, weight=None, eps: float | None = None):
    """rms_norm over the last axis with the mean of squares as a matmul with a 1/C column, as
    layer_norm.py does. In fp16, eps is at least fp16's smallest normal number (as there)."""
    if eps is None:
        eps = torch.finfo(x.dtype).eps
    if x.dtype == torch.float16:
        eps = max(eps, 2.0**-24)
    avg = torch.full((x.shape[-1], 1), 1.0 / x.shape[-1], dtype=x.dtype)  # (C, 1), folded into a constant later
    y = x * torch.rsqrt((x * x) @ avg + eps)  # (..., C)
    return y * weight if weight is not None else y


RMS_NORM_AS_MATMULS = {torch.ops.aten.rms_norm.default: rms_norm}  # a decomposition table entry
