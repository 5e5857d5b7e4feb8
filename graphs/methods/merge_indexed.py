"""The merge as indices: the INDEXED spelling (`IndexedOps`), traced for ONNX Runtime.

The ARITHMETIC spelling (merge.py) ranks with O(Ta^2) comparisons and sums with the one-hot matrix
M (B, T', T): T' x T x C multiply-adds per layer, nearly all with zeros, and some 60 small nodes.
ONNX Runtime has what the sum really needs. Each kept A token fills one slot alone, each B token
its own slot, and the r best A tokens add into their partners' slots, so

    order   = TopK(best, Ta)                 A tokens by best score, ties to the lower index
    src     = order[:r]; kept = sort(order[r:])
    out     = [x[2 kept] ; B-slot average of x[1::2] and x[2 src] through D (B, Tb, r)]

two row gathers, a strided slice and a Tb x r x C matmul. ONNX's TopK orders equal values by
the lower index (its specification; ORT does so), eager uses a stable sort: either way the same
order as merge.py's comparison rank, so the slots are the same; only the order in which floats
are added differs (within rounding). The other primitives are the native ops (comparisons,
ReduceSum/Max/Mean, ArgMax, CumSum, strided Slice, ELU).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from .constants import NO_MATCH, table_tensor
from .merge import bipartite_soft_matching, check_r, matching_scores, protected_first
from .ops import MergeOps, SlotMerge
from .plan import Protected


@dataclass(frozen=True)
class IndexedOps(MergeOps):
    """Native comparisons, reductions, argmax, cumsum, strided slices and gathers (ONNX Runtime)."""

    name: ClassVar[str] = "indexed"

    def greater(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a > b).to(a.dtype)

    def eq(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a == b).to(a.dtype)

    def row_sum(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(dim=-1, keepdim=True)

    def row_max(self, x: torch.Tensor) -> torch.Tensor:
        return x.amax(dim=-1, keepdim=True)

    def row_mean(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=-1)

    def norm(self, x: torch.Tensor) -> torch.Tensor:
        return x.norm(dim=-1, keepdim=True)

    def select(self, x: torch.Tensor, start: int) -> torch.Tensor:
        return x[:, start::2]  # (B, N, C)

    def best_partner(self, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """argmax returns the first maximum: the same lowest index."""
        return scores.amax(dim=-1), scores.argmax(dim=-1).to(scores.dtype)

    def cumsum(self, x: torch.Tensor) -> torch.Tensor:
        return x.cumsum(dim=-1)

    def elu(self, x: torch.Tensor) -> torch.Tensor:
        return F.elu(x)

    def head_mean(self, keys: torch.Tensor) -> torch.Tensor:
        return keys.mean(dim=2)  # ReduceMean

    def class_attention(self, probs: torch.Tensor, start: int) -> torch.Tensor:
        return probs[:, :, 0, start:].mean(dim=1)  # (B, T - start)

    def match(self, metric: torch.Tensor, r: int, protected: Protected,
              valid: torch.Tensor | None = None) -> torch.Tensor | SlotMerge:
        """Gather indices (`IndexedMatching`) for r > 0; r = 0 is the identity M, as ARITHMETIC has it."""
        if r == 0:
            return bipartite_soft_matching(metric, r, protected, valid, self)
        return indexed_matching(metric, r, protected, valid, self)


INDEXED = IndexedOps()


def _rows(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x (B, N, C), idx (B, K) int64, or (K,) when B = 1 -> (B, K, C) rows, as one Gather."""
    b, n, c = x.shape
    if idx.dim() == 1:
        return x.index_select(1, idx)  # (1, K, C)
    idx = idx + table_tensor(np.arange(0, b * n, n, dtype=np.int64)[:, None], idx)  # + batch offsets (B, 1)
    return x.reshape(b * n, c).index_select(0, idx.reshape(-1)).reshape(b, idx.shape[1], c)


@dataclass(frozen=True)
class IndexedMatching:
    """One matching step as token indices. kept (B, T'_A) and src (B, r) int64 token positions of
    the kept and the merging A tokens (1-D when B = 1: one Gather each, no reshapes); to_dst (B, Tb, r) one-hot from each merging token to its
    partner's B slot (zero for a padding orphan, which is dropped)."""

    kept: torch.Tensor
    src: torch.Tensor
    to_dst: torch.Tensor
    protected: Protected  # leading tokens that never merge

    def _order(self, kept: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
        """ToMe's slot order (merge.py protected_first): (B, T', C)."""
        return protected_first(kept, dst, self.protected)

    def sum(self, x: torch.Tensor) -> torch.Tensor:
        """Sum of the inputs landing in each slot: (B, T, C) -> (B, T', C)."""
        dst = x[:, 1::2] + self.to_dst.to(x.dtype) @ _rows(x, self.src)  # (B, Tb, C)
        return self._order(_rows(x, self.kept), dst)

    def wavg(self, x: torch.Tensor, size: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Size-weighted average: x (B, T, C), size (B, T, 1) -> (B, T', C), (B, T', 1). A kept
        token's average is itself, so only the B slots are computed: x_b s_b / tot + sum_k x_k s_k / tot."""
        to_dst = self.to_dst.to(x.dtype)
        size_b, size_src = size[:, 1::2], _rows(size, self.src)  # (B, Tb, 1), (B, r, 1)
        total = size_b + to_dst @ size_src  # (B, Tb, 1)
        weights = to_dst * size_src.reshape(size_src.shape[0], 1, -1) / total  # (B, Tb, r)
        dst = x[:, 1::2] * (size_b / total) + weights @ _rows(x, self.src)  # (B, Tb, C)
        return self._order(_rows(x, self.kept), dst), self._order(_rows(size, self.kept), total)


def indexed_matching(metric: torch.Tensor, r: int, protected: Protected, valid: torch.Tensor | None = None,
                     ops: IndexedOps = INDEXED) -> IndexedMatching:
    """merge.py's `assignment` for metric (B, T, C) and r > 0, held as indices (see module docstring)."""
    t = check_r(metric.shape[1], r, protected)
    scores = matching_scores(metric, protected, valid, ops)  # (B, Ta, Tb)
    best, partner = scores.amax(dim=-1), scores.argmax(dim=-1)  # (B, Ta); int64, the first maximum
    order = ops.descending_order(best)  # (B, Ta)
    src = order[:, :r]  # (B, r): the r best A tokens
    kept = ops.ascending(order[:, r:])  # (B, Ta - r): the rest, in index order
    b, tb = metric.shape[0], t // 2
    dst = torch.gather(partner, 1, src).reshape(b, 1, r)  # (B, 1, r): B index of each partner
    to_dst = (dst == table_tensor(np.arange(tb)[:, None], dst)).to(scores.dtype)  # (B, Tb, r)
    if valid is not None:  # a merging token with no partner of its kind is dropped
        to_dst = to_dst * ops.greater(torch.gather(best, 1, src), NO_MATCH / 2).reshape(b, 1, r)
    if b == 1:
        kept, src = kept.reshape(-1), src.reshape(-1)
    return IndexedMatching(kept * 2, src * 2, to_dst, protected)  # A token i sits at 2i
