"""SigLIP's attention-pool head spelled statically for export (`apply_static_pool` / `remove_static_pool`).

`SiglipMultiheadAttentionPoolingHead` pools every token into one through `nn.MultiheadAttention`
with a learned probe as the only query. Exported as written, ExecuTorch 1.5.1 cannot run it:
MultiheadAttention splits its packed k/v projection through a 5-D unsqueeze/transpose/squeeze
(portable `squeeze_copy`/`unsqueeze_copy`, 3 partitions), and the probe's q projection is
constant-folded, so a `bmm` gets a constant left operand; spelled as views it delegates and
still fails at execute ("XNNExecutor: Propagating input shapes failed", error 0x1).

The patched head computes the same numbers with a Linear-style matmul per projection and no
constant bmm operand. The probe's query is one constant vector per head, so its scores against
every token are a linear map of the tokens: scores = x @ (W_k^T Q) + b_k Q, with Q (C, H) holding
head h's scaled query in the rows of that head's channels (zero elsewhere). Then a softmax over
the tokens, the value projection, the per-head weighted sum as a 4-D matmul, the output
projection, and the head's own layer norm and MLP. Equal to the original to float rounding
(6e-7 max abs on siglip-tiny; folding the query into the key weights changes the summation
order). Its slices of the packed in_proj fold into views, which ExecuTorch needs copied
(export/passes/fold_constants.py `_own_storage`).

The patched head holds the merge spelling (graphs/methods/ops.py OPS_ATTR) and runs the static
spelling when that spelling is `traced` (an exporter tracing a file: `using_ops(model,
ops.for_export())`); otherwise the original forward, so eager outputs are bit for bit the unpatched
model's and validation compares every exported graph with the original head. The patch is an
instance `forward` (removed by `remove_static_pool`); no module or weight changes, state-dict keys
stay.
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from torch import nn

from ..methods.merge import ARITHMETIC
from ..methods.ops import OPS_ATTR, MergeOps, merge_ops_of


def static_pool(head: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The pooled token (B, C) of SiglipMultiheadAttentionPoolingHead for tokens x (B, T, C)."""
    attn = head.attention
    b, t, c = x.shape
    h = attn.num_heads
    d = c // h
    w_q, w_k, w_v = attn.in_proj_weight.chunk(3)  # (C, C) each
    b_q, b_k, b_v = attn.in_proj_bias.chunk(3)  # (C,) each
    query = (head.probe.reshape(1, c) @ w_q.transpose(0, 1) + b_q) * (1.0 / d) ** 0.5  # (1, C), as MHA scales q
    heads = torch.eye(h, dtype=x.dtype).repeat_interleave(d, dim=0)  # (C, H): channel -> its head, one-hot
    q_heads = query.reshape(c, 1) * heads  # (C, H): head h's query in its own channels
    scores = x @ (w_k.transpose(0, 1) @ q_heads) + b_k @ q_heads  # (B, T, H): q . k per head
    probs = torch.softmax(scores.transpose(1, 2), dim=-1)  # (B, H, T)
    v = F.linear(x, w_v, b_v).reshape(b, t, h, d).transpose(1, 2)  # (B, H, T, d)
    ctx = (probs.reshape(b, h, 1, t) @ v).reshape(b, c)  # (B, H, 1, d) -> (B, C), heads in channel order
    pooled = attn.out_proj(ctx)  # (B, C)
    return pooled + head.mlp(head.layernorm(pooled))  # (B, C), the head's residual MLP


def _forward(self: nn.Module, hidden_state: torch.Tensor) -> torch.Tensor:
    if merge_ops_of(self).traced:
        return static_pool(self, hidden_state)
    return type(self).forward(self, hidden_state)


def _heads(model: nn.Module) -> list[nn.Module]:
    from transformers.models.siglip.modeling_siglip import SiglipMultiheadAttentionPoolingHead

    return [m for m in model.modules() if isinstance(m, SiglipMultiheadAttentionPoolingHead)]


def apply_static_pool(model: nn.Module, ops: MergeOps = ARITHMETIC) -> nn.Module:
    """Give every SigLIP attention-pool head in `model` the static spelling for graphs traced with
    `ops.traced`; returns `model`."""
    for head in _heads(model):
        if not head.attention.batch_first or head.attention.in_proj_weight is None:
            raise TypeError("SigLIP pool head: expected a batch-first MultiheadAttention with a packed in_proj")
        head.forward = types.MethodType(_forward, head)
        setattr(head, OPS_ATTR, ops)
    return model


def remove_static_pool(model: nn.Module) -> nn.Module:
    """Undo `apply_static_pool`: the heads' class forward is back."""
    for head in _heads(model):
        if head.__dict__.pop(OPS_ATTR, None) is not None:
            head.__dict__.pop("forward", None)
    return model
