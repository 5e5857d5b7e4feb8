"""Bipartite soft matching (ToMe) as a static-shape graph, and its ARITHMETIC spelling.

The reference algorithm (facebookresearch/ToMe, `tome/merge.py`) ranks tokens with `argsort` and
merges them with `scatter_reduce`. Neither survives export: ONNX has no mean reduction (the
exported graph runs and is wrong), ExecuTorch has no `sort` kernel, Core ML no `scatter_reduce`
converter. This module computes the same assignment with comparisons, `cumsum` and one-hot
matrices, and merges with a matmul:

    pos    (B, T)        output slot of every input token (or -1: dropped, padding only)
    M      (B, T', T)    one-hot assignment, M[b, p, t] = 1 where pos[b, t] == p, T' = T - r
    merge  x' = (M @ (x * size)) / (M @ size)
    unmerge x = M^T @ x'

All token counts (T, r, T') are Python ints fixed when a model is patched; only index values
depend on data. Ties break toward the lowest index by construction: the best partner is the
lowest-index maximum, and tokens with equal scores rank in index order. The protected tokens
(class, distillation, registers) are one `Protected` value (plan.py).

Every function depends on its arguments alone: the spelling of the primitive ops is the `ops`
argument (ops.py), ARITHMETIC (`ArithmeticOps`, below: every op XNNPACK delegates) unless told, or
INDEXED (merge_indexed.py, for ONNX Runtime). Both give the same slots; sums differ only by rounding.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from ..errors import InputError
from .constants import NO_MATCH, PAD_PAIR, PROTECTED, SAME_DELTA, const, table_tensor
from .margins import force_cut, force_partner, note_cut, note_partner
from .ops import MergeOps, SlotMerge
from .plan import NOTHING_PROTECTED, Protected

# Additive attention bias for masked keys: finite so fp16 graphs and every backend accept it.
MASK_BIAS = -1.0e4
_NORM_EPS = 1e-6


@dataclass(frozen=True)
class ArithmeticOps(MergeOps):
    """Comparisons as clamp/ceil arithmetic, reductions and selections as matmuls with constants: the
    spelling every target lowers and XNNPACK delegates whole (ExecuTorch, Core ML, Core AI)."""

    name: ClassVar[str] = "arithmetic"

    def greater(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """ceil(clamp(a - b, 0, 1)). Exact: the difference of two finite floats is 0 only when they
        are equal, and ceil takes any positive value up to 1 to 1. XNNPACK has no comparison ops; it
        has sub, clamp and ceil."""
        return torch.ceil(torch.clamp(a - b, 0.0, 1.0))

    def eq(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """1 - ceil(clamp(|a - b|, 0, 1)); exact as `greater`."""
        return 1.0 - torch.ceil(torch.clamp((a - b).abs(), 0.0, 1.0))

    def row_sum(self, x: torch.Tensor) -> torch.Tensor:
        """A matmul with a ones column (delegable, unlike sum)."""
        return x @ const("ones", x, x.shape[-1])

    def row_max(self, x: torch.Tensor) -> torch.Tensor:
        """max.dim on a 4-D view (XNNPACK takes it)."""
        b, m, n = x.shape
        return x.reshape(b, 1, m, n).max(dim=3, keepdim=True).values.reshape(b, m, 1)  # (B, 1, M, N) -> (B, M, 1)

    def row_mean(self, x: torch.Tensor) -> torch.Tensor:
        return self.row_sum(x).reshape(x.shape[:-1]) * (1.0 / x.shape[-1])

    def norm(self, x: torch.Tensor) -> torch.Tensor:
        """sqrt of a matmul sum: XNNPACK delegates it, where the norm's pow/sum would run on portable
        kernels. Eager computes it the same way, so eager equals the exported graph."""
        return torch.sqrt(self.row_sum(x * x))

    def select(self, x: torch.Tensor, start: int) -> torch.Tensor:
        """A one-hot matmul from the right (exact; strided slices are not delegable): (B, C, T) @ (T, N)."""
        sel = const("select", x, x.shape[1], start)  # (T, N)
        return (x.transpose(1, 2) @ sel).transpose(1, 2)  # (B, N, C)

    def best_partner(self, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The lowest index reaching the max is Tb - max_j(at_max_j * (Tb - j)): every maximum votes
        its distance from the end."""
        b, ta, tb = scores.shape
        best = self.row_max(scores)  # (B, Ta, 1)
        at_max = self.eq(scores, best)  # (B, Ta, Tb)
        partner = float(tb) - self.row_max(at_max * const("from_end", scores, tb))  # (B, Ta, 1)
        return best.reshape(b, ta), partner.reshape(b, ta)

    def cumsum(self, x: torch.Tensor) -> torch.Tensor:
        """A matmul with an upper triangle."""
        return x @ const("upper", x, x.shape[-1])  # (B, N)

    def elu(self, x: torch.Tensor) -> torch.Tensor:
        """clamp + exp (XNNPACK delegates both; its ELU node stayed on portable kernels)."""
        return torch.clamp(x, min=0.0) + torch.exp(torch.clamp(x, max=0.0)) - 1.0

    def head_mean(self, keys: torch.Tensor) -> torch.Tensor:
        """A matmul with a 1/H column instead of mean(dim=2), which XNNPACK would not delegate (it
        averages 4-D tensors over H, W only)."""
        b, t, heads, d = keys.shape
        weights = torch.tensor([[1.0 / heads]] * heads, dtype=keys.dtype, device=keys.device)  # (H, 1), lifted
        # (B, T, d, H) -> (B*T*d, H) @ (H, 1) -> (B, T, d)
        return (keys.permute(0, 1, 3, 2).reshape(b * t * d, heads) @ weights).reshape(b, t, d)

    def class_attention(self, probs: torch.Tensor, start: int) -> torch.Tensor:
        """Slices, not a select, and the head mean as a matmul with a 1/H column."""
        b, h, t, _ = probs.shape
        row = probs[:, :, :1, start:].reshape(b, h, t - start)  # (B, H, T - p)
        weights = table_tensor(np.full((h, 1), 1.0 / h, np.float32), probs)  # (H, 1)
        return (row.transpose(1, 2).reshape(b * (t - start), h) @ weights).reshape(b, t - start)

    def match(self, metric: torch.Tensor, r: int, protected: Protected,
              valid: torch.Tensor | None = None) -> torch.Tensor:
        return bipartite_soft_matching(metric, r, protected, valid, self)


ARITHMETIC = ArithmeticOps()


def max_r(tokens: int, protected: Protected = NOTHING_PROTECTED) -> int:
    """The largest r one layer allows: at most half the unprotected tokens merge."""
    return max((tokens - protected.count) // 2, 0)


def protected_first(kept: torch.Tensor, dst: torch.Tensor, protected: Protected) -> torch.Tensor:
    """ToMe's slot order from the kept A rows (B, Ta - r, C) and the B rows (B, Tb, C): kept A, then B;
    with a protected B token (a distillation token, registers) the protected tokens first in their
    own order (A0, B0, A1, ..), then the other kept A, then the other B: [A0, B0, A1.., B1..]."""
    pa, pb = protected.split
    if pb == 0:
        return torch.cat([kept, dst], dim=1)
    head = [(kept if k % 2 == 0 else dst)[:, k // 2:k // 2 + 1] for k in range(protected.count)]
    return torch.cat([*head, kept[:, pa:], dst[:, pb:]], dim=1)


@functools.lru_cache(maxsize=1024)
def _b_in_token(t: int, n_kept: int, protected: Protected) -> np.ndarray:
    """(T,) output slot of every B token at its token position (2j + 1), 0 at A positions: a
    protected B token keeps its own position, the others follow the n_kept kept A tokens."""
    slots = np.zeros(t, np.float32)
    slots[1::2] = n_kept + np.arange(t // 2)
    pb = protected.split[1]
    slots[1:2 * pb:2] = np.arange(1, 2 * pb, 2)  # ToMe's order [A0, B0, A1.., B1..] with a distillation token
    return slots


@functools.lru_cache(maxsize=1024)
def _protected_kept_shift(ta: int, protected: Protected) -> np.ndarray | None:
    """(Ta,) what moves kept A token slots from their rank among kept A tokens to ToMe's order
    generalized: protected A row i (always kept, rank i) to its own position 2i, every other kept A
    token past all protected tokens (+ the protected B count). None where nothing moves (a class
    token alone, or none)."""
    pa, pb = protected.split
    if pb == 0:
        return None
    shift = np.full(ta, float(pb), np.float32)
    shift[:pa] = np.arange(pa)  # protected row i has rank i: i + i = slot 2i
    return shift


def blend(keep: torch.Tensor, x: torch.Tensor, other: float) -> torch.Tensor:
    """where(keep, x, other) as arithmetic on a 0/1 float mask: exact, and converters without
    scalar `where` or boolean and/or (Core ML's torch frontend) accept it."""
    return x * keep + other * (1.0 - keep)


def snap_duplicates(scores: torch.Tensor, ops: MergeOps = ARITHMETIC) -> torch.Tensor:
    """Cosine scores (..., Ta, Tb) with every score within SAME_DELTA of 1 set to exactly 1.

    Equal tokens have similarity 1, but each backend rounds the norm, the division and the dot
    product its own way, so copies of different tokens land on 1.0, 0.99999994 or 1.0000001 by
    luck: eager and Core AI ranked such copies in different orders (docs/coreai.md). Set to exactly
    1, they are exact ties on every backend, and ties go to the lowest index by construction.
    The threshold is SAME_DELTA, or 4 ulp of 1 in low-precision dtypes (fp16: 3.9e-3)."""
    delta = max(SAME_DELTA, 4.0 * torch.finfo(scores.dtype).eps)
    near = ops.greater(scores, 1.0 - delta)  # (..., Ta, Tb) 0/1
    return blend(1.0 - near, scores, 1.0)  # where(near, 1, scores), exact


def rank_descending(values: torch.Tensor, ops: MergeOps = ARITHMETIC) -> torch.Tensor:
    """Stable descending rank without sort: rank[i] = #{j: v_j > v_i or (v_j == v_i and j < i)}.

    values (B, N) -> (B, N) float32 holding integers. O(N^2) comparisons, N = T/2, cheap next to
    attention. The two conditions exclude each other, so their sum is the 0/1 'ranks before'.
    """
    b, n = values.shape
    vi = values.reshape(b, n, 1)  # (B, N, 1)
    vj = values.reshape(b, 1, n)  # (B, 1, N)
    earlier = const("earlier", values, n)  # (N, N): [i, j] = j < i
    before = ops.greater(vj, vi) + ops.eq(vj, vi) * earlier  # (B, N, N)
    return ops.row_sum(before).reshape(b, n)  # (B, N)


def matching_scores(metric: torch.Tensor, protected: Protected = NOTHING_PROTECTED, valid: torch.Tensor | None = None,
                    ops: MergeOps = ARITHMETIC) -> torch.Tensor:
    """Cosine similarity of A = metric[:, 0::2] against B = metric[:, 1::2] -> (B, Ta, Tb).

    Zero vectors normalise to zero (similarity 0 with everything) instead of NaN; scores within
    SAME_DELTA of 1 are exactly 1 (`snap_duplicates`), so copies of a token tie on every backend.
    `valid` (B, T) marks real tokens (1) and padding (0); a pair that mixes the two scores
    NO_MATCH so padding never merges into a real token, two padding tokens score PAD_PAIR.
    Protected tokens (the class token, a distillation token, register tokens after the class
    token) score PROTECTED: their A rows never merge, their B columns take no merge.
    Scores keep the metric's dtype: an fp16 graph matches in fp16, because XNNPACK cannot cast
    inside a partition (a cast to float32 split ExecuTorch fp16 graphs at every layer). The slot
    arithmetic stays exact in fp16 (integers below 2048); near-ties may rank differently from
    fp32, which validation bounds by PSNR.
    """
    t = metric.shape[1]
    norm = torch.clamp(ops.norm(metric), min=_NORM_EPS)  # (B, T, 1)
    unit = metric / norm  # (B, T, C)
    a, b = ops.select(unit, 0), ops.select(unit, 1)  # (B, Ta, C), (B, Tb, C)
    scores = snap_duplicates(a @ b.transpose(-1, -2), ops)  # (B, Ta, Tb)
    if valid is not None:
        v = valid.to(metric.dtype).reshape(valid.shape[0], t, 1)  # (B, T, 1)
        va, vb = ops.select(v, 0), ops.select(v, 1)  # (B, Ta, 1), (B, Tb, 1)
        same = ops.eq(va, vb.transpose(1, 2))  # (B, Ta, Tb)
        both_pad = (1.0 - va) * (1.0 - vb.transpose(1, 2))  # (B, Ta, Tb)
        scores = blend(1.0 - both_pad, blend(same, scores, NO_MATCH), PAD_PAIR)
    ta, tb = scores.shape[-2:]
    pa, pb = protected.split
    if pa:
        scores = blend(const("free_row", scores, ta, pa), scores, PROTECTED)  # rows 0..pa-1 of (Ta, 1)
    if pb:
        scores = blend(const("free_col", scores, tb, pb), scores, PROTECTED)  # columns 0..pb-1 of (Tb,)
    return scores


def assignment(metric: torch.Tensor, r: int, protected: Protected = NOTHING_PROTECTED,
               valid: torch.Tensor | None = None, ops: MergeOps = ARITHMETIC) -> torch.Tensor:
    """Output slot of every input token after one bipartite soft matching step.

    metric (B, T, C) -> pos (B, T) float32 holding integers in [0, T - r), or -1.
    Output order is ToMe's: kept A tokens in index order, then all B tokens; with a
    distillation token, [A0, B0, A1.., B1..]; with register tokens (which ToMe has not), the same
    rule generalized: the protected tokens first in their own order, then the other kept A tokens,
    then the other B tokens. The r A tokens whose best similarity is highest
    join their best B partner. A padding token chosen while it has no padding partner is
    dropped (-1), never merged into a real token. Spelled ARITHMETIC, every op is one XNNPACK
    delegates (arithmetic, clamp, ceil, max over a 4-D view, matmuls with constants), so the merge
    breaks no partition.
    """
    t = check_r(metric.shape[1], r, protected)
    ta = (t + 1) // 2
    n_kept = ta - r
    scores = matching_scores(metric, protected, valid, ops)  # (B, Ta, Tb)
    scores = force_partner("tome", scores)  # eager only, inside margins.forced_flips(): a near-tie replayed
    best, partner = ops.best_partner(scores)  # (B, Ta), (B, Ta)
    best = force_cut("tome", best, r)
    merged = torch.clamp(float(r) - rank_descending(best, ops), 0.0, 1.0)  # (B, Ta): rank < r, integers
    note_cut("tome", best, r)  # eager only, inside margins.record_margins(): how clear the choices are
    note_partner("tome", scores, merged)
    kept_slot = ops.cumsum(1.0 - merged) - 1.0  # (B, Ta): rank among the kept A tokens
    partner_slot = partner + float(n_kept)  # (B, Ta); a protected B partner never occurs
    shift = _protected_kept_shift(ta, protected)
    if shift is not None:  # protected B tokens sit among the first slots: [A0, B0, A1, ..]
        kept_slot = kept_slot + table_tensor(shift, kept_slot)  # merged rows' values are replaced below
    a_slot = kept_slot + merged * (partner_slot - kept_slot)  # (B, Ta): where(merged, partner, kept)
    if valid is not None:
        orphan = merged * (1.0 - ops.greater(best, NO_MATCH / 2))  # chosen with no partner of its kind
        a_slot = blend(1.0 - orphan, a_slot, -1.0)
    # Back to token order: A token i sits at 2i, B token j at 2j + 1 (a one-hot matmul, exact).
    a_to_token = const("to_token", a_slot, ta, t)  # (Ta, T)
    b_in_token = table_tensor(_b_in_token(t, n_kept, protected), a_slot)  # (T,)
    return a_slot @ a_to_token + b_in_token  # (B, T)


def check_r(t: int, r: int, protected: Protected) -> int:
    """Raise InputError unless one step may merge r of t tokens; returns t."""
    limit = max_r(t, protected)
    if not 0 <= r <= limit:
        raise InputError(f"r={r} is out of range for {t} tokens: allowed 0..{limit}")
    return t


def one_hot_assignment(pos: torch.Tensor, slots: int, dtype: torch.dtype, ops: MergeOps = ARITHMETIC) -> torch.Tensor:
    """pos (B, T) -> M (B, slots, T) with M[b, p, t] = (pos[b, t] == p)."""
    idx = const("slot_ids", pos, slots)  # (T', 1)
    b, t = pos.shape
    return ops.eq(pos.reshape(b, 1, t), idx).to(dtype)  # (B, T', T)


def bipartite_soft_matching(metric: torch.Tensor, r: int, protected: Protected = NOTHING_PROTECTED,
                            valid: torch.Tensor | None = None, ops: MergeOps = ARITHMETIC) -> torch.Tensor:
    """ToMe's matching step as a one-hot matrix M (B, T - r, T), in the dtype of `metric`."""
    pos = assignment(metric, r, protected, valid, ops)
    return one_hot_assignment(pos, metric.shape[1] - r, metric.dtype, ops)


def merge_wavg(
    m: torch.Tensor | SlotMerge, x: torch.Tensor, size: torch.Tensor, unit_size: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Size-weighted average merge. m (B, T', T) or a SlotMerge, x (B, T, C), size (B, T, 1) ->
    (B, T', C), (B, T', 1). unit_size: every size is 1 (no merge yet), so x * size is x."""
    if not isinstance(m, torch.Tensor):
        return m.wavg(x, size)
    total = m @ size  # (B, T', 1)
    merged = (m @ (x if unit_size else x * size)) / torch.clamp(total, min=_NORM_EPS)  # (B, T', C)
    return merged, total


def merge_sum(m: torch.Tensor | SlotMerge, x: torch.Tensor) -> torch.Tensor:
    """Sum of the inputs landing in each slot: sources (B, T, N0) -> (B, T', N0), masks, sizes."""
    return m @ x if isinstance(m, torch.Tensor) else m.sum(x)


def unmerge(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Copy every merged token back to each of its inputs. m (B, T', T), x (B, T', C) -> (B, T, C)."""
    return m.transpose(1, 2) @ x


def attention_bias(size: torch.Tensor | None, valid: torch.Tensor | None) -> torch.Tensor | None:
    """Additive key bias (B, 1, 1, T): log(size) for proportional attention, MASK_BIAS on padding."""
    bias = None
    if size is not None:
        bias = size.reshape(size.shape[0], size.shape[1]).log()  # (B, T)
    if valid is not None:
        pad = (1.0 - valid) * MASK_BIAS  # (B, T)
        bias = pad if bias is None else bias + pad
    return None if bias is None else bias.reshape(bias.shape[0], 1, 1, bias.shape[1])  # (B, 1, 1, T)
