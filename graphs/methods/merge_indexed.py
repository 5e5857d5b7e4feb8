"""The merge as indices: the INDEXED spelling of graphs/methods/merge.py, traced for ONNX Runtime.

The ARITHMETIC spelling ranks with O(Ta^2) comparisons and sums with the one-hot matrix
M (B, T', T): T' x T x C multiply-adds per layer, nearly all with zeros, and some 60 small nodes.
ONNX Runtime has what the sum really needs. Each kept A token fills one slot alone, each B token
its own slot, and the r best A tokens add into their partners' slots, so

    order   = TopK(best, Ta)                 A tokens by best score, ties to the lower index
    src     = order[:r]; kept = sort(order[r:])
    out     = [x[2 kept] ; B-slot average of x[1::2] and x[2 src] through D (B, Tb, r)]

two row gathers, a strided slice and a Tb x r x C matmul. ONNX's TopK orders equal values by
the lower index (its specification; ORT does so), eager uses a stable sort: either way the same
order as merge.py's comparison rank, so the slots are the same; only the order in which floats
are added differs (within rounding).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .merge import (NO_MATCH, SlotMerge, bipartite_soft_matching, check_r, greater, indexed, matching_scores,
                    protected_count, protected_first, table_tensor)


def descending_order(values: torch.Tensor) -> torch.Tensor:
    """(B, N) -> (B, N) int64 indices by descending value, equal values in index order."""
    if torch.compiler.is_exporting():  # ONNX TopK: ties to the lower index by specification
        return torch.topk(values, values.shape[-1], dim=-1).indices
    return torch.sort(values, dim=-1, descending=True, stable=True).indices


def _ascending(idx: torch.Tensor) -> torch.Tensor:
    """Distinct int64 indices (B, K) sorted ascending (no ties, so any sort gives the same)."""
    if torch.compiler.is_exporting():
        return torch.topk(idx, idx.shape[-1], dim=-1, largest=False).values
    return torch.sort(idx, dim=-1).values


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
    protected: int  # leading tokens that never merge (merge.py protected_count)

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


def indexed_matching(
    metric: torch.Tensor,
    r: int,
    class_token: bool = False,
    distill_token: bool = False,
    valid: torch.Tensor | None = None,
    registers: int = 0,
) -> IndexedMatching:
    """merge.py's `assignment` for metric (B, T, C) and r > 0, held as indices (see module docstring)."""
    t = check_r(metric.shape[1], r, class_token, distill_token, registers)
    scores = matching_scores(metric, class_token, distill_token, valid, registers)  # (B, Ta, Tb)
    best, partner = scores.amax(dim=-1), scores.argmax(dim=-1)  # (B, Ta); int64, the first maximum
    order = descending_order(best)  # (B, Ta)
    src = order[:, :r]  # (B, r): the r best A tokens
    kept = _ascending(order[:, r:])  # (B, Ta - r): the rest, in index order
    b, tb = metric.shape[0], t // 2
    dst = torch.gather(partner, 1, src).reshape(b, 1, r)  # (B, 1, r): B index of each partner
    to_dst = (dst == table_tensor(np.arange(tb)[:, None], dst)).to(scores.dtype)  # (B, Tb, r)
    if valid is not None:  # a merging token with no partner of its kind is dropped
        to_dst = to_dst * greater(torch.gather(best, 1, src), NO_MATCH / 2).reshape(b, 1, r)
    if b == 1:
        kept, src = kept.reshape(-1), src.reshape(-1)
    return IndexedMatching(kept * 2, src * 2, to_dst,  # A token i sits at 2i
                           protected_count(class_token, distill_token, registers))


def slot_merge(
    metric: torch.Tensor,
    r: int,
    class_token: bool = False,
    distill_token: bool = False,
    valid: torch.Tensor | None = None,
    registers: int = 0,
) -> torch.Tensor | SlotMerge:
    """One matching step as `merge_wavg` / `merge_sum` take it: the one-hot matrix M (B, T', T)
    (ARITHMETIC), or gather indices (INDEXED, below): the same slots either way."""
    if indexed() and r > 0:
        return indexed_matching(metric, r, class_token, distill_token, valid, registers)
    return bipartite_soft_matching(metric, r, class_token, distill_token, valid, registers)
