"""One transformer layer with a merge inside, written once for every supported family.

A merge method changes a layer in two places: attention may get log(size) added to its key
logits (proportional attention) and returns the keys (the metric of ToMe and PiToMe) and its
probabilities (DiffRate's class-token ranking); then, between attention and the MLP, the method's
step (tome.py, pitome.py, diffrate.py, drop.py) reduces the tokens. The family adapters in
graphs/models/hf_models.py say where each family keeps its projections and norms.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn
from torch.fx.traceback import annotate

from .merge import attention_bias
from .ops import MergeOps
from .plan import MergePlan

# fx node meta ("custom") on every op the merge adds; a program traced under
# torch.fx.traceback.preserve_node_meta() carries it, so benchmarks can find the merge ops.
MERGE_ANNOTATION = {"tomobile": "merge"}


class TokenState(NamedTuple):
    """What flows between merged layers. Shapes: x (B, T, C), size (B, T, 1),
    source (B, T, T0) or None, valid (B, T) or None (1 = real token, 0 = padding).
    unit_size: a Python bool, True until a layer merges: every size is 1, so proportional
    attention adds log(1) = 0 and the merge needs no x * size (both are skipped, exactly)."""

    x: torch.Tensor
    size: torch.Tensor
    source: torch.Tensor | None
    valid: torch.Tensor | None
    unit_size: bool = True


@dataclass(frozen=True)
class AttentionParts:
    """Where a family keeps its attention projections."""

    q: nn.Linear
    k: nn.Linear
    v: nn.Linear
    heads: int
    head_dim: int
    scale: float


def attention(parts: AttentionParts, h: torch.Tensor,
              bias: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Multi-head attention returning the context (B, T, H*d), the keys (B, T, H, d) and the
    attention probabilities (B, H, T, T) (DiffRate ranks by their class-token row).

    Plain matmul + softmax: every export target lowers it. bias (B, 1, 1, T) is added to the
    logits (proportional attention and padding). The merge turns the keys into its metric
    (`MergeOps.head_mean`); the drop oracle leaves them unused, so it pays nothing for them. They are
    returned in the projection's layout, before the per-head transpose, so ONNX Runtime averages
    them without a second transpose.
    """
    b, t, _ = h.shape
    q = parts.q(h).view(b, t, parts.heads, parts.head_dim).transpose(1, 2)  # (B, H, T, d)
    keys = parts.k(h).view(b, t, parts.heads, parts.head_dim)  # (B, T, H, d)
    k = keys.transpose(1, 2)  # (B, H, T, d)
    v = parts.v(h).view(b, t, parts.heads, parts.head_dim).transpose(1, 2)  # (B, H, T, d)
    logits = (q @ k.transpose(-1, -2)) * parts.scale  # (B, H, T, T)
    if bias is not None:
        logits = logits + bias
    probs = logits.softmax(dim=-1)  # (B, H, T, T)
    ctx = probs @ v  # (B, H, T, d)
    ctx = ctx.transpose(1, 2).reshape(b, t, parts.heads * parts.head_dim)  # (B, T, H*d)
    return ctx, keys, probs


@dataclass(frozen=True)
class LayerFns:
    """A family's layer, split where ToMe merges.

    attend(x, bias) -> (x after the attention residual, keys (B, T, H, d), probabilities
    (B, H, T, T)); feed_forward(x) -> x.
    """

    attend: Callable[[torch.Tensor, torch.Tensor | None], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    feed_forward: Callable[[torch.Tensor], torch.Tensor]


def initial_state(x: torch.Tensor, valid: torch.Tensor | None, trace_source: bool) -> TokenState:
    b, t, _ = x.shape
    size = x[:, :, :1] * 0.0 + 1.0  # (B, T, 1) ones, from delegable ops (torch.ones traces to a portable `full`)
    source = None
    if trace_source:
        source = torch.eye(t, dtype=x.dtype, device=x.device).expand(b, t, t)  # (B, T, T0)
    return TokenState(x, size, source, valid)


def attend(fns: LayerFns, state: TokenState, prop_attn: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The layer's attention with the state's bias: log(size) once sizes differ (when `prop_attn`),
    MASK_BIAS on padding. -> x after the attention residual (B, T, C), keys (B, T, H, d), the
    attention probabilities (B, H, T, T)."""
    with annotate(MERGE_ANNOTATION):
        bias = attention_bias(state.size if prop_attn and not state.unit_size else None, state.valid)
    return fns.attend(state.x, bias)


def plain_layer(fns: LayerFns, state: TokenState, layer: int, plan: MergePlan, ops: MergeOps) -> TokenState:
    """A layer that merges nothing: attention (with the state's bias), then the MLP."""
    x, _, _ = attend(fns, state, plan.prop_attn)
    return state._replace(x=fns.feed_forward(x))

