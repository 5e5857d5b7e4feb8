"""One transformer layer with ToMe inside, written once for every supported family.

ToMe changes a layer in two places: attention gets log(size) added to its key logits
(proportional attention) and returns the keys averaged over heads as the matching metric; then,
between attention and the MLP, r tokens merge. The family adapters in `hf_models.py` say where
each family keeps its projections and norms; the merge logic lives here only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn
from torch.fx.traceback import annotate

from .merge import attention_bias, bipartite_soft_matching, merge_sum, merge_wavg
from .plan import MergePlan


# fx node meta ("custom") on every op the merge adds; a program traced under
# torch.fx.traceback.preserve_node_meta() carries it, so benchmarks can find the merge ops.
MERGE_ANNOTATION = {"tomobile": "merge"}


class TokenState(NamedTuple):
    """What flows between merged layers. Shapes: x (B, T, C), size (B, T, 1),
    source (B, T, T0) or None, valid (B, T) or None (1 = real token, 0 = padding)."""

    x: torch.Tensor
    size: torch.Tensor
    source: torch.Tensor | None
    valid: torch.Tensor | None


@dataclass(frozen=True)
class AttentionParts:
    """Where a family keeps its attention projections."""

    q: nn.Linear
    k: nn.Linear
    v: nn.Linear
    heads: int
    head_dim: int
    scale: float


def attention(parts: AttentionParts, h: torch.Tensor, bias: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Multi-head attention returning the context (B, T, H*d) and the metric keys (B, T, d).

    Plain matmul + softmax: every export target lowers it. bias (B, 1, 1, T) is added to the
    logits (proportional attention and padding).
    """
    b, t, _ = h.shape
    q = parts.q(h).view(b, t, parts.heads, parts.head_dim).transpose(1, 2)  # (B, H, T, d)
    k = parts.k(h).view(b, t, parts.heads, parts.head_dim).transpose(1, 2)  # (B, H, T, d)
    v = parts.v(h).view(b, t, parts.heads, parts.head_dim).transpose(1, 2)  # (B, H, T, d)
    logits = (q @ k.transpose(-1, -2)) * parts.scale  # (B, H, T, T)
    if bias is not None:
        logits = logits + bias
    ctx = logits.softmax(dim=-1) @ v  # (B, H, T, d)
    ctx = ctx.transpose(1, 2).reshape(b, t, parts.heads * parts.head_dim)  # (B, T, H*d)
    return ctx, head_mean(k)


def head_mean(k: torch.Tensor) -> torch.Tensor:
    """Keys averaged over heads, (B, H, T, d) -> (B, T, d): ToMe's metric. A matmul with a 1/H column
    instead of mean(dim=1), which XNNPACK would not delegate (it averages 4-D tensors over H, W only)."""
    heads = k.shape[1]
    b, _, t, d = k.shape
    weights = torch.tensor([[1.0 / heads]] * heads, dtype=k.dtype, device=k.device)  # (H, 1), a lifted constant
    return (k.permute(0, 2, 3, 1).reshape(b * t * d, heads) @ weights).reshape(b, t, d)  # (B*T*d, H) @ (H, 1) -> (B, T, d)


@dataclass(frozen=True)
class LayerFns:
    """A family's layer, split where ToMe merges.

    attend(x, bias) -> (x after the attention residual, metric); feed_forward(x) -> x.
    """

    attend: Callable[[torch.Tensor, torch.Tensor | None], tuple[torch.Tensor, torch.Tensor]]
    feed_forward: Callable[[torch.Tensor], torch.Tensor]


def initial_state(x: torch.Tensor, valid: torch.Tensor | None, trace_source: bool) -> TokenState:
    b, t, _ = x.shape
    size = x[:, :, :1] * 0.0 + 1.0  # (B, T, 1) ones, from delegable ops (torch.ones traces to a portable `full`)
    source = None
    if trace_source:
        source = torch.eye(t, dtype=x.dtype, device=x.device).expand(b, t, t)  # (B, T, T0)
    return TokenState(x, size, source, valid)


def merged_layer(fns: LayerFns, state: TokenState, r: int, plan: MergePlan) -> TokenState:
    """Attention, then merge r tokens (bipartite soft matching), then the MLP."""
    with annotate(MERGE_ANNOTATION):
        bias = attention_bias(state.size if plan.prop_attn else None, state.valid)
    x, metric = fns.attend(state.x, bias)
    size, source, valid = state.size, state.source, state.valid
    if r > 0:
        with annotate(MERGE_ANNOTATION):
            m = bipartite_soft_matching(metric, r, plan.class_token, plan.distill_token, valid)  # (B, T', T)
            x, size = merge_wavg(m, x, size)
            if source is not None:
                source = merge_sum(m, source)
            if valid is not None:
                valid = merge_sum(m, valid.unsqueeze(-1)).squeeze(-1).clamp(max=1.0)  # (B, T')
    return TokenState(fns.feed_forward(x), size, source, valid)
