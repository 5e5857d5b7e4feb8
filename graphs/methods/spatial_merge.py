"""Spatial token merging for diffusion self-attention, Stable-Diffusion style (tomesd), static.

tomesd picks one destination token per sy x sx cell at random, merges the r most similar source
tokens into their best destination before self-attention and copies the result back after.
Random choice is not static, so the destination offset inside each cell is a fixed Python pair
(top-left by default, or drawn once from a seed when the model is patched). Ranking, partner
choice, cumsum and the one-hot matrix are graphs/methods/merge.py's comparison-free ops (no argsort, no
boolean and/or, which Core ML cannot convert); merge and unmerge are one-hot matmuls:

    pos (N, S)        output slot of every token; kept sources first, then destinations
    M   (N, S - r, S) one-hot; merge x' = (M @ x) / (M @ 1), unmerge x = M^T @ x'

r = int(S * ratio), at most the number of source tokens (ratio 0.75 with 2x2 cells merges every
source). r = 0 means no merge at all, so the patched model equals the unpatched one exactly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from ..errors import InputError
from .margins import note_cut, note_partner
from .merge import (NO_MATCH, best_partner, cumsum_rows, one_hot_assignment, rank_descending, snap_duplicates,
                    unmerge)

_EPS = 1e-6


@dataclass(frozen=True)
class SpatialMergeConfig:
    """ratio of tokens merged; cell sy x sx holds one destination at (oy, ox) inside it."""

    ratio: float = 0.0
    sy: int = 2
    sx: int = 2
    oy: int = 0
    ox: int = 0

    @classmethod
    def seeded(cls, ratio: float, seed: int, sy: int = 2, sx: int = 2) -> SpatialMergeConfig:
        """Destination offset drawn once from `seed` (static for export), as tomesd's random choice."""
        rnd = random.Random(seed)
        return cls(ratio, sy, sx, rnd.randrange(sy), rnd.randrange(sx))


def destination_indices(h: int, w: int, cfg: SpatialMergeConfig) -> list[int]:
    """Flat indices of the destination tokens on an h x w grid, one per full sy x sx cell."""
    cells = (h // cfg.sy) * (w // cfg.sx)
    return grid_destinations(h, w, cfg.sy, cfg.sx, [cfg.oy * cfg.sx + cfg.ox] * cells)


def grid_destinations(h: int, w: int, sy: int, sx: int, offsets: list[int]) -> list[int]:
    """Flat destination indices on an h x w grid: one per full sy x sx cell, cells in raster order,
    `offsets[k]` = dy * sx + dx the destination's place inside cell k (tomesd's per-cell draw).
    Rows and columns beyond the last full cell hold sources only, as in tomesd."""
    cols = w // sx
    return [(k // cols * sy + off // sx) * w + (k % cols * sx + off % sx) for k, off in enumerate(offsets)]


def merge_count(h: int, w: int, cfg: SpatialMergeConfig) -> int:
    """r: tokens removed by the merge, int(h*w*ratio) capped at the number of sources."""
    if not 0.0 <= cfg.ratio <= 1.0:
        raise InputError(f"spatial merge ratio {cfg.ratio} must lie in [0, 1]")
    sources = h * w - len(destination_indices(h, w, cfg))
    return min(int(h * w * cfg.ratio), sources)


def _const(rows, like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(rows, dtype=like.dtype, device=like.device)


def spatial_assignment(x: torch.Tensor, h: int, w: int, cfg: SpatialMergeConfig) -> torch.Tensor:
    """One-hot merge matrix M (N, S - r, S) for tokens x (N, S, C) on an h x w grid."""
    return assignment(x, destination_indices(h, w, cfg), merge_count(h, w, cfg))


def assignment(x: torch.Tensor, dst: list[int], r: int) -> torch.Tensor:
    """One-hot merge matrix M (N, S - r, S): tokens x (N, S, C), destination indices `dst` fixed at
    patch time, the r sources most similar to a destination (cosine) merge into their best one.
    Slots: kept sources first (in token order), then destinations in `dst` order."""
    s = x.shape[1]
    dst_set = set(dst)
    src = [i for i in range(s) if i not in dst_set]
    n_kept, nd = len(src) - r, len(dst)
    unit = x / x.norm(dim=-1, keepdim=True).clamp_min(_EPS)  # (N, S, C)
    src_idx = torch.tensor(src, dtype=torch.int64, device=x.device)
    dst_idx = torch.tensor(dst, dtype=torch.int64, device=x.device)
    scores = snap_duplicates(unit.index_select(1, src_idx) @ unit.index_select(1, dst_idx).transpose(1, 2))  # (N, Ns, Nd)
    best, partner = best_partner(scores)  # (N, Ns), (N, Ns) float: lowest index at the max wins
    merged = torch.clamp(float(r) - rank_descending(best.clamp_min(NO_MATCH)), 0.0, 1.0)  # (N, Ns): rank < r
    note_cut("spatial", best.clamp_min(NO_MATCH), r)  # eager only, inside margins.record_margins()
    note_partner("spatial", scores, merged)
    kept_slot = cumsum_rows(1.0 - merged) - 1.0  # (N, Ns)
    src_slot = merged * (partner + n_kept) + (1.0 - merged) * kept_slot  # (N, Ns)
    dst_slot = (_const([float(j + n_kept) for j in range(nd)], x)).unsqueeze(0).expand(x.shape[0], nd)  # (N, Nd)
    split = torch.cat([src_slot, dst_slot], dim=1)  # (N, S) in order [src..., dst...]
    inverse = [0] * s
    for i, j in enumerate(src + dst):
        inverse[j] = i
    pos = split.index_select(1, torch.tensor(inverse, dtype=torch.int64, device=x.device))  # (N, S)
    return one_hot_assignment(pos, s - r, x.dtype)  # (N, S', S)


def merge_mean(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Plain average of the tokens in each slot (tomesd's mean). m (N, S', S), x (N, S, C) -> (N, S', C)."""
    return (m @ x) / m.sum(dim=-1, keepdim=True).clamp_min(_EPS)


def merge_attend_unmerge(
    x: torch.Tensor, h: int, w: int, cfg: SpatialMergeConfig, attend
) -> torch.Tensor:
    """Run `attend` (N, S', C) -> (N, S', C) on merged tokens and copy results back. x (N, S, C)."""
    if merge_count(h, w, cfg) == 0:
        return attend(x)
    m = spatial_assignment(x, h, w, cfg)  # (N, S - r, S)
    return unmerge(m, attend(merge_mean(m, x)))  # (N, S, C)
