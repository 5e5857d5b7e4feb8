"""PiToMe's vision merge written in the original's style (hchautran/PiToMe `algo/pitome/merge.py`:
argsort, gather, scatter_reduce), with stable sorts so that exact ties have one answer, and the
first `protected` tokens held out (the original holds out the class token: protected = 1)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def pitome_vision(metric: torch.Tensor, ratio: float, margin: float, protected: int = 1, use_bsm_pitome: bool = False):
    metric = metric[:, protected:, :]
    B, T, C = metric.shape
    if ratio >= 1.0:
        return lambda x, mode=None: x
    r = math.floor(T - T * ratio)
    metric = F.normalize(metric, p=2, dim=-1)
    sim = metric @ metric.transpose(-1, -2)
    energy_score = F.elu(sim - margin, alpha=1.0).mean(dim=-1)
    indices = torch.argsort(energy_score, descending=True, stable=True)
    batch_idx = torch.arange(B).unsqueeze(1)
    if use_bsm_pitome:
        a_idx, b_idx = indices[..., ::2], indices[..., 1::2]
        scores = sim.gather(dim=-1, index=b_idx.unsqueeze(-2).expand(B, T, b_idx.shape[-1]))
        scores = scores.gather(dim=-2, index=a_idx.unsqueeze(-1).expand(B, a_idx.shape[-1], b_idx.shape[-1]))
        node_max, node_idx = scores.max(dim=-1)
        edge_idx = node_max.argsort(dim=-1, descending=True, stable=True)[..., None]
        unm_idx, src_idx = edge_idx[..., r:, :], edge_idx[..., :r, :]
        dst_idx = node_idx[..., None].gather(dim=-2, index=src_idx)

        def merge(x, mode="mean"):
            x_cls, x = x[:, :protected], x[:, protected:]
            src, dst = x[batch_idx, a_idx, :], x[batch_idx, b_idx, :]
            n, t1, c = src.shape
            unm = src.gather(dim=-2, index=unm_idx.expand(n, t1 - r, c))
            src = src.gather(dim=-2, index=src_idx.expand(n, r, c))
            dst = dst.scatter_reduce(-2, dst_idx.expand(n, r, c), src, reduce=mode)
            return torch.cat([x_cls, unm, dst], dim=1)

        return merge
    merge_idx, protected_idx = indices[..., :2 * r], indices[..., 2 * r:]
    a_idx, b_idx = merge_idx[..., ::2], merge_idx[..., 1::2]
    scores = sim.gather(dim=-1, index=b_idx.unsqueeze(-2).expand(B, T, r))
    scores = scores.gather(dim=-2, index=a_idx.unsqueeze(-1).expand(B, r, r))
    _, dst_idx = scores.max(dim=-1)

    def merge(x, mode="mean"):
        x_cls, x = x[:, :protected], x[:, protected:]
        B, T, C = x.shape
        kept = x[batch_idx, protected_idx, :]
        src, dst = x[batch_idx, a_idx, :], x[batch_idx, b_idx, :]
        dst = dst.scatter_reduce(-2, dst_idx.unsqueeze(2).expand(B, r, C), src, reduce=mode)
        return torch.cat([x_cls, kept, dst], dim=1)

    return merge


def merge_wavg(merge, x: torch.Tensor, size: torch.Tensor | None = None):
    if size is None:
        size = torch.ones_like(x[..., 0, None])
    x = merge(x * size, mode="sum")
    size = merge(size, mode="sum")
    return x / size, size


def reference_layers(x: torch.Tensor, layers, plan) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run tomobile's layer adapters (`attend`, `feed_forward`) with this reference merge between
    them, as the original's patch does, at the r per layer that `plan` fixed. Returns the hidden
    states and the token sizes (None if nothing merged). PiToMe takes a kept ratio, so each layer uses
    the largest ratio (in 1/1000) that gives the plan's r."""
    from tomobile.graphs.pitome import merge_count  # the original's r = floor(T - T * ratio)

    protected, size = plan.get("protected"), None
    for i, fns in enumerate(layers):
        bias = None if size is None or not plan.prop_attn else size.log().reshape(1, 1, 1, -1)
        x, keys, _ = fns.attend(x, bias)
        if plan.r[i]:
            t = x.shape[1] - protected
            ratio = next(q / 1000 for q in range(999, 0, -1) if merge_count(t, q / 1000) == plan.r[i])
            merge = pitome_vision(keys.mean(dim=2), ratio, plan.get("margin_per_layer")[i], protected,
                                  i < plan.get("bsm_layers"))
            x, size = merge_wavg(merge, x, size)
        x = fns.feed_forward(x)
    return x, size
