"""DiffRate's eval block step written in the original's style (OpenGVLab/DiffRate
`DiffRate/patch/deit.py` DiffRateBlock.forward, eval branch, and `merge.py` get_merge_func): sort,
gather, slice, scatter_reduce. The sort is stable so that exact ties have one answer; the first
`protected` tokens are held out of the sort and receive nothing (the original: the class token)."""

from __future__ import annotations

import math

import torch


def get_merge_func(metric, kept_number, protected=1):
    metric = metric / metric.norm(dim=-1, keepdim=True)
    unimportant = metric[:, kept_number:]
    compress_number = unimportant.shape[1]
    similarity = unimportant @ metric[:, :kept_number].transpose(-1, -2)
    similarity[..., :, :protected] = -math.inf
    node_max, node_idx = similarity.max(dim=-1)
    dst_idx = node_idx[..., None]

    def merge(x, mode="mean"):
        src, dst = x[:, kept_number:], x[:, :kept_number]
        n, _, c = src.shape
        return dst.scatter_reduce(-2, dst_idx.expand(n, compress_number, c), src, reduce=mode)

    return merge, node_max


def diffrate_step(x, attn, size, prune_kept_num, merge_kept_num, protected=1, source=None):
    """x (B, N, C) after the attention residual, attn (B, H, N, N) -> x, size, source."""
    B = x.shape[0]
    cls_attn = attn[:, :, 0, protected:].mean(dim=1)
    _, idx = torch.sort(cls_attn, descending=True, stable=True)
    head = torch.arange(protected).expand(B, protected)
    idx = torch.cat((head, idx + protected), dim=1)
    x = torch.gather(x, dim=1, index=idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
    size = torch.gather(size, dim=1, index=idx.unsqueeze(-1))
    if source is not None:
        source = torch.gather(source, dim=1, index=idx.unsqueeze(-1).expand(-1, -1, source.shape[-1]))
    x, size = x[:, :prune_kept_num], size[:, :prune_kept_num]
    source = None if source is None else source[:, :prune_kept_num]
    if merge_kept_num < x.shape[1]:
        merge, node_max = get_merge_func(x.detach(), merge_kept_num, protected)
        x = merge(x, mode="mean")
        size = torch.cat((size[:, :merge_kept_num], size[:, merge_kept_num:] * node_max[..., None]), dim=1)
        size = merge(size, mode="sum")
        source = None if source is None else merge(source, mode="amax")
    return x, size, source
