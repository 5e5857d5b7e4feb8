"""Group norm as primitive ops (4-D means over the last two axes, rsqrt, arithmetic): XNNPACK has no
group norm, so every UNet resnet and attention block left it to a portable kernel, a partition break."""

from __future__ import annotations

import torch


def group_norm(x, num_groups: int, weight=None, bias=None, eps: float = 1e-5, cudnn_enabled: bool = True):
    """x (N, C, *spatial) normalised per group of C / G channels over the channels and the spatial
    axes, as XNNPACK delegates it: the mean over the last two axes of a 4-D view (N, G, C/G, HW)."""
    n, c = x.shape[0], x.shape[1]
    g = x.reshape(n, num_groups, c // num_groups, -1)  # (N, G, C/G, HW)
    centred = g - g.mean(dim=(-2, -1), keepdim=True)  # (N, G, C/G, HW)
    y = centred * torch.rsqrt((centred * centred).mean(dim=(-2, -1), keepdim=True) + eps)
    y = y.reshape(x.shape)  # (N, C, *spatial)
    shape = (1, c) + (1,) * (x.dim() - 2)
    if weight is not None:
        y = y * weight.reshape(shape)
    return y + bias.reshape(shape) if bias is not None else y


GROUP_NORM_AS_MEANS = {torch.ops.aten.group_norm.default: group_norm}  # a decomposition table entry
