"""Spatial token merging for diffusion self-attention, Stable-Diffusion style (tomesd), static.

tomesd picks one destination token per sy x sx cell at random, merges the r most similar source
tokens into their best destination before self-attention and copies the result back after.
Random choice is not static, so the destination offset inside each cell is a fixed Python pair
(top-left by default, or drawn once from a seed when the model is patched). Both forms
(`SpatialOps`, a value the caller passes: chosen when a model is patched or traced) compute the
same output slot of every token; the primitive ops inside either form are spelled by the
`MergeOps` value passed beside it (graphs/methods/ops.py), as in every other merge:

    pos (N, S)        output slot of every token; kept sources first, then destinations

ONE_HOT: ranking, partner choice, cumsum and the one-hot matrix are graphs/methods/merge.py's
comparison-free ops (no argsort, no boolean and/or, which Core ML cannot convert; XNNPACK
delegates all of them); merge and unmerge are one-hot matmuls, (S - r) x S x C multiply-adds each:

    M   (N, S - r, S) one-hot; merge x' = (M @ x) / (M @ 1), unmerge x = M^T @ x'

INDEXED: the r merging sources are the first r of a stable descending order (TopK when exported:
ties to the lower index, as the comparison rank), marked by a scatter; merge is a scatter-add of
the tokens and of ones into the S - r slots (a segment mean), unmerge a gather by pos: O(S x C),
as tomesd's own gather and scatter_reduce, in ops ONNX has (ScatterElements add, GatherElements).

r = int(S * ratio), at most the number of source tokens (ratio 0.75 with 2x2 cells merges every
source). r = 0 means no merge at all, so the patched model equals the unpatched one exactly.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

import torch

from ..errors import InputError
from .constants import NO_MATCH, SAME_DELTA
from .margins import force_cut, force_partner, note_cut, note_partner
from .merge import ARITHMETIC, one_hot_assignment, rank_descending, snap_duplicates, unmerge
from .ops import MergeOps

_EPS = 1e-6


class SpatialOps(str, Enum):
    """The spatial merge's form in a graph; both give the same slots (module docstring)."""

    ONE_HOT = "one-hot"  # comparisons as arithmetic, merge and copy-back as one-hot matmuls (every target)
    INDEXED = "indexed"  # TopK, scatter-add and gather: linear in S (ONNX Runtime)


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


def spatial_assignment(x: torch.Tensor, h: int, w: int, cfg: SpatialMergeConfig,
                       ops: MergeOps = ARITHMETIC) -> torch.Tensor:
    """One-hot merge matrix M (N, S - r, S) for tokens x (N, S, C) on an h x w grid."""
    return assignment(x, destination_indices(h, w, cfg), merge_count(h, w, cfg), ops)


def assignment(x: torch.Tensor, dst: list[int], r: int, ops: MergeOps = ARITHMETIC) -> torch.Tensor:
    """One-hot merge matrix M (N, S - r, S): tokens x (N, S, C), destination indices `dst` fixed at
    patch time, the r sources most similar to a destination (cosine) merge into their best one.
    Slots: kept sources first (in token order), then destinations in `dst` order."""
    pos = slot_positions(x, dst, r, SpatialOps.ONE_HOT, ops)
    return one_hot_assignment(pos, x.shape[1] - r, x.dtype, ops)  # (N, S', S)


def slot_positions(x: torch.Tensor, dst: list[int], r: int, spatial: SpatialOps,
                   ops: MergeOps = ARITHMETIC) -> torch.Tensor:
    """pos (N, S) float holding integers: the output slot of every token of x (N, S, C), in form
    `spatial`, its primitive ops spelled `ops`."""
    s = x.shape[1]
    dst_set = set(dst)
    src = [i for i in range(s) if i not in dst_set]
    n_kept, nd = len(src) - r, len(dst)
    unit = x / ops.norm(x).clamp_min(_EPS)  # (N, S, C)
    src_idx = torch.tensor(src, dtype=torch.int64, device=x.device)
    dst_idx = torch.tensor(dst, dtype=torch.int64, device=x.device)
    scores = unit.index_select(1, src_idx) @ unit.index_select(1, dst_idx).transpose(1, 2)  # (N, Ns, Nd)
    if spatial is SpatialOps.INDEXED:
        scores = force_partner("spatial", clamp_duplicates(scores))  # eager only, inside margins.forced_flips()
        best, partner = scores.amax(dim=-1), scores.argmax(dim=-1).to(x.dtype)  # (N, Ns): the first maximum
        best = force_cut("spatial", best, r)
        order = ops.descending_order(best)  # (N, Ns) int64, equal scores in index order (TopK when traced)
        merged = torch.zeros_like(best).scatter(1, order[:, :r], 1.0)  # (N, Ns): 1 for the r best
        kept_slot = (1.0 - merged).cumsum(dim=-1) - 1.0  # (N, Ns)
    else:
        scores = force_partner("spatial", snap_duplicates(scores, ops))  # eager only, inside margins.forced_flips()
        best, partner = ops.best_partner(scores)  # (N, Ns), (N, Ns) float: lowest index at the max wins
        best = force_cut("spatial", best, r)
        merged = torch.clamp(float(r) - rank_descending(best.clamp_min(NO_MATCH), ops), 0.0, 1.0)  # (N, Ns): rank < r
        kept_slot = ops.cumsum(1.0 - merged) - 1.0  # (N, Ns)
    note_cut("spatial", best.clamp_min(NO_MATCH), r)  # eager only, inside margins.record_margins()
    note_partner("spatial", scores, merged)
    src_slot = merged * (partner + n_kept) + (1.0 - merged) * kept_slot  # (N, Ns)
    dst_slot = (_const([float(j + n_kept) for j in range(nd)], x)).unsqueeze(0).expand(x.shape[0], nd)  # (N, Nd)
    split = torch.cat([src_slot, dst_slot], dim=1)  # (N, S) in order [src..., dst...]
    inverse = [0] * s
    for i, j in enumerate(src + dst):
        inverse[j] = i
    return split.index_select(1, torch.tensor(inverse, dtype=torch.int64, device=x.device))  # (N, S)


def clamp_duplicates(scores: torch.Tensor) -> torch.Tensor:
    """merge.snap_duplicates' exact ties in one clamp: snap_duplicates sets every score above T =
    1 - delta (in the scores' dtype) to 1; clamping at the next float above T sets the same scores,
    and only them, to that float. Either way they tie exactly, above every other score, so ranks and
    the lowest-index partner are the same; one elementwise pass over the (S - Nd) x Nd scores
    instead of the comparison, cast and blend (profiled on sd-unet-tiny at 512 px, ONNX Runtime at 1
    thread: the comparison and cast alone took 3.6% of the merged UNet's node time)."""
    delta = max(SAME_DELTA, 4.0 * torch.finfo(scores.dtype).eps)
    t = torch.tensor(1.0 - delta, dtype=scores.dtype)  # T as `scores > 1 - delta` rounds it
    return scores.clamp(max=float(torch.nextafter(t, torch.tensor(2.0, dtype=scores.dtype))))


def merge_mean(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Plain average of the tokens in each slot (tomesd's mean). m (N, S', S), x (N, S, C) -> (N, S', C)."""
    return (m @ x) / m.sum(dim=-1, keepdim=True).clamp_min(_EPS)


@dataclass(frozen=True)
class IndexedSlots:
    """The INDEXED spelling's merge and copy-back: pos (N, S) int64 slot of every token, `slots` = S - r."""

    pos: torch.Tensor
    slots: int

    def mean(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, S, C) -> (N, S', C): each slot the plain mean of its tokens (every slot holds one or more)."""
        n, s, c = x.shape
        idx = self.pos.reshape(n, s, 1)  # (N, S, 1)
        sums = x.new_zeros(n, self.slots, c).scatter_add(1, idx.expand(n, s, c), x)  # (N, S', C)
        counts = x.new_zeros(n, self.slots, 1).scatter_add(1, idx, x.new_ones(n, s, 1))  # (N, S', 1)
        return sums / counts

    def copy_back(self, y: torch.Tensor) -> torch.Tensor:
        """y (N, S', C) -> (N, S, C): every token takes its slot's row."""
        n, s = self.pos.shape
        return y.gather(1, self.pos.reshape(n, s, 1).expand(n, s, y.shape[2]))  # (N, S, C)


def merge_fns(x: torch.Tensor, dst: list[int], r: int, spatial: SpatialOps = SpatialOps.ONE_HOT,
              ops: MergeOps = ARITHMETIC
              ) -> tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]:
    """(merge, unmerge) for tokens x (N, S, C): merge (N, S, C) -> (N, S - r, C) by the plain mean of
    each slot, unmerge (N, S - r, C) -> (N, S, C) copies each slot back to its tokens (ToMe's pair)."""
    if spatial is SpatialOps.INDEXED:
        slots = IndexedSlots(slot_positions(x, dst, r, spatial, ops).to(torch.int64), x.shape[1] - r)
        return slots.mean, slots.copy_back
    m = assignment(x, dst, r, ops)  # (N, S - r, S)
    return (lambda t: merge_mean(m, t)), (lambda t: unmerge(m, t))


def merge_attend_unmerge(x: torch.Tensor, h: int, w: int, cfg: SpatialMergeConfig, attend,
                         spatial: SpatialOps = SpatialOps.ONE_HOT, ops: MergeOps = ARITHMETIC) -> torch.Tensor:
    """Run `attend` (N, S', C) -> (N, S', C) on merged tokens and copy results back. x (N, S, C)."""
    r = merge_count(h, w, cfg)
    if r == 0:
        return attend(x)
    merge, unmerge_ = merge_fns(x, destination_indices(h, w, cfg), r, spatial, ops)
    return unmerge_(attend(merge(x)))  # (N, S, C)
