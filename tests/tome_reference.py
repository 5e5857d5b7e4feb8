"""ToMe's bipartite soft matching written the original way (facebookresearch/ToMe's
`bipartite_soft_matching` and `merge_wavg`: argsort, gather, scatter_reduce), eager only, with ties
pinned so they have one right answer (see tests/graphs/methods/test_merge.py's docstring)."""

from __future__ import annotations

import math

import torch


def reference_matching(metric: torch.Tensor, r: int, class_token: bool, distill_token: bool, registers: int = 0):
    """ToMe-style: returns (merge_fn, unm_idx, src_idx, dst_idx). `registers`: register tokens after
    the class token, which ToMe has not, protected by its distillation-token rule generalized (the
    first 1 + R tokens alternate A0, B0, A1, ..; their rows and columns score -inf; they come first
    in the output in their own order). One register is ToMe's distillation-token code."""
    protected = int(class_token) + int(distill_token) + registers
    pa, pb = (protected + 1) // 2, protected // 2
    metric = metric / metric.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    a, b = metric[..., ::2, :], metric[..., 1::2, :]
    scores = a @ b.transpose(-1, -2)
    scores = torch.where(scores > 1.0 - 1e-5, torch.ones_like(scores), scores)  # third pin: copies tie
    scores[..., :pa, :] = -math.inf
    scores[..., :, :pb] = -math.inf
    node_max = scores.max(dim=-1).values
    idx = torch.arange(scores.shape[-1]).expand_as(scores)
    node_idx = torch.where(scores == node_max[..., None], idx, scores.shape[-1]).min(dim=-1).values
    edge_idx = node_max.argsort(dim=-1, descending=True, stable=True)[..., None]
    unm_idx = edge_idx[..., r:, :].sort(dim=1)[0]
    src_idx = edge_idx[..., :r, :]
    dst_idx = node_idx[..., None].gather(dim=-2, index=src_idx)

    def merge(x: torch.Tensor, mode: str) -> torch.Tensor:
        src, dst = x[..., ::2, :], x[..., 1::2, :]
        n, t1, c = src.shape
        unm = src.gather(dim=-2, index=unm_idx.expand(n, t1 - r, c))
        src = src.gather(dim=-2, index=src_idx.expand(n, r, c))
        dst = dst.scatter_reduce(-2, dst_idx.expand(n, r, c), src, reduce=mode)
        if pb:  # the protected tokens first, in their order: [A0, B0, A1.., B1..] with a distillation token
            head = [(unm if k % 2 == 0 else dst)[:, k // 2:k // 2 + 1] for k in range(protected)]
            return torch.cat([*head, unm[:, pa:], dst[:, pb:]], dim=1)
        return torch.cat([unm, dst], dim=1)

    return merge, unm_idx, src_idx, dst_idx


def reference_merge_wavg(merge, x: torch.Tensor, size: torch.Tensor):
    xs = merge(x * size, "sum")
    s = merge(size, "sum")
    return xs / s, s
