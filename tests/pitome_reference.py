"""PiToMe's vision and text merges written in the original's style (hchautran/PiToMe
`algo/pitome/merge.py`: argsort, gather, scatter_reduce), with stable sorts so that exact ties have
one answer, and the first `protected` tokens held out (the original holds out the class token:
protected = 1). `pitome_text` adds tomobile's padding rule, which the original does not have
(padding first in the energy order, padding pairs only, a padding A with no padding B dropped)."""

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
    from tomobile.graphs.methods.pitome import merge_count  # the original's r = floor(T - T * ratio)

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


def pitome_text(metric: torch.Tensor, ratio: float, margin: float, class_token: bool = True,
                valid: torch.Tensor | None = None):
    """Their `pitome_text` (Gaussian-kernel energy, sigma = 1 - margin; the 2r highest-energy tokens
    split into halves, A the higher). `valid` (B, T) over all tokens (class token included)."""
    if class_token:
        metric = metric[:, 1:, :]
        valid = None if valid is None else valid[:, 1:]
    B, T, C = metric.shape
    r = math.floor(T - T * ratio)
    metric = F.normalize(metric, p=2, dim=-1)
    batch_idx = torch.arange(B).unsqueeze_(1)
    sim = metric @ metric.transpose(-1, -2)
    sigma = 1 - margin
    kernel = torch.exp(-(((1 - sim) / sigma) ** 2 * 0.5))
    if valid is not None:  # tomobile's padding rule: real rows count real columns; padding ranks first
        kernel = kernel * valid[:, None, :]
    energy_score = kernel.mean(-1) * 1 / (sigma * torch.sqrt(torch.tensor(2 * torch.pi)))
    if valid is not None:
        peak = 1.0 / (sigma * math.sqrt(2 * math.pi))
        energy_score = torch.where(valid > 0, energy_score, torch.full_like(energy_score, peak + 1.0))
    indices = torch.argsort(energy_score, descending=True, stable=True)
    merge_idx = indices[..., :2 * r]
    protected_idx = indices[..., 2 * r:]
    a_idx, b_idx = merge_idx[..., :r], merge_idx[..., r:]
    scores = sim.gather(dim=-1, index=b_idx.unsqueeze(-2).expand(B, T, r))
    scores = scores.gather(dim=-2, index=a_idx.unsqueeze(-1).expand(B, r, r))
    keep = torch.ones(B, r, dtype=torch.bool)
    if valid is not None:
        va, vb = valid.gather(1, a_idx) > 0, valid.gather(1, b_idx) > 0  # (B, r)
        same = va[:, :, None] == vb[:, None, :]
        scores = torch.where(same & ~va[:, :, None], torch.full_like(scores, 2.0), scores)  # padding pairs first
        scores = torch.where(same, scores, torch.full_like(scores, -1.0e4))
        keep = va | (~vb[:, None, :] & ~va[:, :, None]).any(-1)  # a padding A with no padding B is dropped
    _, dst_idx = scores.max(dim=-1)
    dst_idx = torch.where(keep, dst_idx, torch.full_like(dst_idx, r))  # dropped: into a spare row, discarded

    def merge(x, mode="mean"):
        if class_token:
            x_cls, x = x[:, :1, :], x[:, 1:, :]
        B, T, C = x.shape
        protected = x[batch_idx, protected_idx, :]
        src, dst = x[batch_idx, a_idx, :], x[batch_idx, b_idx, :]
        dst = torch.cat([dst, torch.zeros(B, 1, C, dtype=x.dtype)], dim=1)
        dst = dst.scatter_reduce(-2, dst_idx.unsqueeze(2).expand(B, r, C), src, reduce=mode)[:, :r]
        if class_token:
            return torch.cat([x_cls, protected, dst], dim=1)
        return torch.cat([protected, dst], dim=1)

    return merge


def reference_text_layers(x: torch.Tensor, valid: torch.Tensor, layers, plan) -> torch.Tensor:
    """Their PiToMeBertLayer loop between tomobile's BERT layer adapters at the plan's r per layer:
    keys summed over heads (`key_layer.sum(1)`), `merge_wavg(merge, x, None)` (unit sizes every
    layer), the mask and the sources merged by amax; the hidden states unmerged to the input length."""
    from tomobile.graphs.methods.pitome import merge_count

    b, t, _ = x.shape
    source = torch.eye(t).expand(b, t, t)
    for i, fns in enumerate(layers):
        x, keys, _ = fns.attend(x, ((1.0 - valid) * -1.0e4).reshape(b, 1, 1, -1))
        if plan.r[i]:
            n = x.shape[1] - 1
            ratio = next(q / 1000 for q in range(999, 0, -1) if merge_count(n, q / 1000) == plan.r[i])
            merge = pitome_text(keys.sum(dim=2), ratio, plan.get("margin_per_layer")[i], True, valid)
            x, _ = merge_wavg(merge, x, None)
            valid = merge(valid[..., None], mode="amax")[..., 0]
            source = merge(source, mode="amax")
        x = fns.feed_forward(x)
    return source.transpose(1, 2) @ x
