"""scaled_dot_product_attention as matmul + softmax, without torch's 'safe' softmax."""

from __future__ import annotations

import torch


def attention(q, k, v, attn_mask=None, dropout_p: float = 0.0, is_causal: bool = False, scale=None,
              enable_gqa: bool = False):
    """scaled_dot_product_attention as matmul + softmax (inference: no dropout, no causal mask).

    torch's own math decomposition uses a 'safe' softmax whose any/eq/where run on portable
    kernels and split the XNNPACK partition in every layer. The two differ only on rows that
    are -inf throughout, which these encoders never produce."""
    if is_causal or enable_gqa:
        raise NotImplementedError("causal or grouped-query attention is not rewritten for XNNPACK")
    logits = (q @ k.transpose(-1, -2)) * (scale if scale is not None else q.shape[-1] ** -0.5)  # (B, H, T, T)
    if attn_mask is not None:
        if not attn_mask.is_floating_point():  # boolean keep-mask -> additive bias (folded when constant)
            attn_mask = (attn_mask.to(logits.dtype) - 1.0) * 1e4
        logits = logits + attn_mask
    return torch.softmax(logits, dim=-1) @ v  # (B, H, T, d)


ATTENTION_AS_MATMULS = {torch.ops.aten.scaled_dot_product_attention.default: attention}  # a decomposition table entry
