"""Bipartite soft matching (ToMe) as a static-shape graph.

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
lowest-index maximum, and tokens with equal scores rank in index order.

The same assignment has two spellings (`MergeOps`), chosen while a graph is traced: ARITHMETIC
(above; every target lowers it, XNNPACK delegates all of it) and INDEXED, for ONNX Runtime, which
has native comparisons, ArgMax, CumSum, strided Slice and Gather and runs them faster than the
equivalent matmuls (merge_indexed.py). Both give the same slots; sums differ only by rounding.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from contextvars import ContextVar
from enum import Enum
from typing import Protocol

import numpy as np
import torch

from ..errors import InputError
from .margins import force_cut, force_partner, note_cut, note_partner

# A large finite negative score. Cosine similarities lie in [-1, 1]; protected tokens sit
# below every real score, and below pairs that may not merge (padding against real tokens).
NO_MATCH = -1.0e4
PROTECTED = -2.0e4
# Two padding tokens score above any cosine, so padding merges with padding first and the
# merges among real tokens depend only on how much padding there is, not on what it holds.
PAD_PAIR = 2.0
# Additive attention bias for masked keys: finite so fp16 graphs and every backend accept it.
MASK_BIAS = -1.0e4
_NORM_EPS = 1e-6
# Cosine similarities this close to 1 count as exactly 1 (see `snap_duplicates`): far above how far
# backends' rounding moves the similarity of two equal tokens (a few ulp), far below real differences.
SAME_DELTA = 1e-5


class MergeOps(str, Enum):
    """How the merge is spelled in a traced graph; every spelling gives the same assignment."""

    ARITHMETIC = "arithmetic"  # comparisons as arithmetic, selections as one-hot matmuls (all targets)
    INDEXED = "indexed"  # native comparisons, argmax, cumsum, strided slices, gathers (ONNX Runtime)


_OPS: ContextVar[MergeOps] = ContextVar("tomobile_merge_ops", default=MergeOps.ARITHMETIC)


@contextlib.contextmanager
def merge_ops(ops: MergeOps | str) -> Iterator[None]:
    """Trace (or run) the merge with `ops` inside this block; ARITHMETIC outside any block."""
    token = _OPS.set(MergeOps(ops))
    try:
        yield
    finally:
        _OPS.reset(token)


def indexed() -> bool:
    """True inside `merge_ops(MergeOps.INDEXED)`."""
    return _OPS.get() is MergeOps.INDEXED


def protected_count(class_token: bool = False, distill_token: bool = False, registers: int = 0) -> int:
    """Leading tokens that never merge: the class token, then a distillation token or register tokens."""
    return int(class_token) + int(distill_token) + registers


def max_r(tokens: int, class_token: bool = False, distill_token: bool = False, registers: int = 0) -> int:
    """The largest r one layer allows: at most half the unprotected tokens merge."""
    return max((tokens - protected_count(class_token, distill_token, registers)) // 2, 0)


@functools.lru_cache(maxsize=1024)
def _table(kind: str, n: int, m: int = 0) -> np.ndarray:
    """Constant matrices of the static graph, built once per shape (eager calls stay cheap):

    ones (n, 1) | select (n, .) one-hot, column k picks row m + 2k | from_end (n,) n - j |
    earlier (n, n) [i, j] = j < i | upper (n, n) [i, j] = i <= j | to_token (n, m) [i, 2i] = 1 |
    slot_ids (n, 1) 0..n-1 | free_row (n, 1) / free_col (n,) 0 at the first m indices, else 1.
    """
    i = np.arange(n)
    if kind == "ones":
        return np.ones((n, 1), np.float32)
    if kind == "select":
        return (i[:, None] == np.arange(m, n, 2)[None, :]).astype(np.float32)
    if kind == "from_end":
        return (n - i).astype(np.float32)
    if kind == "earlier":
        return (i[None, :] < i[:, None]).astype(np.float32)
    if kind == "upper":
        return (i[:, None] <= i[None, :]).astype(np.float32)
    if kind == "to_token":
        return (np.arange(m)[None, :] == 2 * i[:, None]).astype(np.float32)
    if kind == "slot_ids":
        return i.astype(np.float32)[:, None]
    if kind == "free_row":
        return (i >= m).astype(np.float32)[:, None]
    if kind == "free_col":
        return (i >= m).astype(np.float32)
    raise KeyError(kind)


def _const(kind: str, like: torch.Tensor, n: int, m: int = 0) -> torch.Tensor:
    """A constant from `_table` in the dtype of `like`: export lifts it as a buffer, so no arange/full
    op (which ExecuTorch would run on portable kernels) lands in the graph."""
    return table_tensor(_table(kind, n, m), like)


_NUMPY = {torch.float32: np.float32, torch.float16: np.float16, torch.float64: np.float64, torch.int64: np.int64}


def table_tensor(table: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    # astype copies: fresh C strides (numpy gives a new axis stride 0, which ExecuTorch rejects), in
    # the dtype of `like`, so an fp16 graph needs no cast (XNNPACK cannot cast inside a partition)
    return torch.from_numpy(table.astype(_NUMPY[like.dtype])).to(like.device)  # cast in numpy: no cast node


def protected_split(protected: int) -> tuple[int, int]:
    """Protected A rows and B columns: the first `protected` tokens alternate A0, B0, A1, B1, ..."""
    return (protected + 1) // 2, protected // 2


def protected_first(kept: torch.Tensor, dst: torch.Tensor, protected: int) -> torch.Tensor:
    """ToMe's slot order from the kept A rows (B, Ta - r, C) and the B rows (B, Tb, C): kept A, then B;
    with a protected B token (a distillation token, registers) the protected tokens first in their
    own order (A0, B0, A1, ..), then the other kept A, then the other B: [A0, B0, A1.., B1..]."""
    pa, pb = protected_split(protected)
    if pb == 0:
        return torch.cat([kept, dst], dim=1)
    head = [(kept if k % 2 == 0 else dst)[:, k // 2:k // 2 + 1] for k in range(protected)]
    return torch.cat([*head, kept[:, pa:], dst[:, pb:]], dim=1)


@functools.lru_cache(maxsize=1024)
def _b_in_token(t: int, n_kept: int, protected: int) -> np.ndarray:
    """(T,) output slot of every B token at its token position (2j + 1), 0 at A positions: a
    protected B token keeps its own position, the others follow the n_kept kept A tokens."""
    slots = np.zeros(t, np.float32)
    slots[1::2] = n_kept + np.arange(t // 2)
    pb = protected_split(protected)[1]
    slots[1:2 * pb:2] = np.arange(1, 2 * pb, 2)  # ToMe's order [A0, B0, A1.., B1..] with a distillation token
    return slots


@functools.lru_cache(maxsize=1024)
def _protected_kept_shift(ta: int, protected: int) -> np.ndarray | None:
    """(Ta,) what moves kept A token slots from their rank among kept A tokens to ToMe's order
    generalized: protected A row i (always kept, rank i) to its own position 2i, every other kept A
    token past all protected tokens (+ the protected B count). None where nothing moves (a class
    token alone, or none)."""
    pa, pb = protected_split(protected)
    if pb == 0:
        return None
    shift = np.full(ta, float(pb), np.float32)
    shift[:pa] = np.arange(pa)  # protected row i has rank i: i + i = slot 2i
    return shift


def greater(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(a > b) as 0/1 float with delegable arithmetic: ceil(clamp(a - b, 0, 1)).

    Exact: the difference of two finite floats is 0 only when they are equal, and ceil takes any
    positive value up to 1 to 1. XNNPACK has no comparison ops; it has sub, clamp and ceil."""
    if indexed():
        return (a > b).to(a.dtype)
    return torch.ceil(torch.clamp(a - b, 0.0, 1.0))


def _eq(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(a == b) as 0/1 float: 1 - ceil(clamp(|a - b|, 0, 1)); exact as `greater`."""
    if indexed():
        return (a == b).to(a.dtype)
    return 1.0 - torch.ceil(torch.clamp((a - b).abs(), 0.0, 1.0))


def _row_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum over the last axis as a matmul with a ones column (delegable, unlike sum): (..., N) -> (..., 1)."""
    if indexed():
        return x.sum(dim=-1, keepdim=True)
    return x @ _const("ones", x, x.shape[-1])


def _row_max(x: torch.Tensor) -> torch.Tensor:
    """Max over the last axis of (B, M, N) -> (B, M, 1), as max.dim on a 4-D view (XNNPACK takes it)."""
    if indexed():
        return x.amax(dim=-1, keepdim=True)
    b, m, n = x.shape
    return x.reshape(b, 1, m, n).max(dim=3, keepdim=True).values.reshape(b, m, 1)  # (B, 1, M, N) -> (B, M, 1)


def _norm(x: torch.Tensor) -> torch.Tensor:
    """L2 norm over the last axis, (B, T, C) -> (B, T, 1).

    Eager runs torch's norm, bit-equal to what reference implementations compute, so exact-tie
    tests hold. An exported graph takes sqrt of a matmul sum instead: XNNPACK delegates that, while
    the norm's pow/sum would run on portable kernels. The two agree to float rounding, like every
    backend's matmul against eager's."""
    if torch.compiler.is_exporting() and not indexed():
        return torch.sqrt(_row_sum(x * x))
    return x.norm(dim=-1, keepdim=True)


def _blend(keep: torch.Tensor, x: torch.Tensor, other: float) -> torch.Tensor:
    """where(keep, x, other) as arithmetic on a 0/1 float mask: exact, and converters without
    scalar `where` or boolean and/or (Core ML's torch frontend) accept it."""
    return x * keep + other * (1.0 - keep)


def _select(x: torch.Tensor, start: int) -> torch.Tensor:
    """x[:, start::2] for x (B, T, C) as a one-hot matmul from the right (exact; strided slices are
    not delegable): (B, C, T) @ (T, N) -> (B, N, C)."""
    if indexed():
        return x[:, start::2]  # (B, N, C)
    sel = _const("select", x, x.shape[1], start)  # (T, N)
    return (x.transpose(1, 2) @ sel).transpose(1, 2)  # (B, N, C)


def snap_duplicates(scores: torch.Tensor) -> torch.Tensor:
    """Cosine scores (..., Ta, Tb) with every score within SAME_DELTA of 1 set to exactly 1.

    Equal tokens have similarity 1, but each backend rounds the norm, the division and the dot
    product its own way, so copies of different tokens land on 1.0, 0.99999994 or 1.0000001 by
    luck: eager and Core AI ranked such copies in different orders (docs/coreai.md). Set to exactly
    1, they are exact ties on every backend, and ties go to the lowest index by construction.
    The threshold is SAME_DELTA, or 4 ulp of 1 in low-precision dtypes (fp16: 3.9e-3)."""
    delta = max(SAME_DELTA, 4.0 * torch.finfo(scores.dtype).eps)
    near = greater(scores, 1.0 - delta)  # (..., Ta, Tb) 0/1
    return _blend(1.0 - near, scores, 1.0)  # where(near, 1, scores), exact


def best_partner(scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Max over B and the lowest B index reaching it. scores (B, Ta, Tb) -> (B, Ta), (B, Ta) float.

    The lowest index is Tb - max_j(at_max_j * (Tb - j)): every maximum votes its distance from the end.
    """
    if indexed():  # argmax returns the first maximum: the same lowest index
        return scores.amax(dim=-1), scores.argmax(dim=-1).to(scores.dtype)
    tb = scores.shape[-1]
    best = _row_max(scores)  # (B, Ta, 1)
    at_max = _eq(scores, best)  # (B, Ta, Tb)
    from_end = _const("from_end", scores, tb)  # (Tb,)
    partner = float(tb) - _row_max(at_max * from_end)  # (B, Ta, 1)
    b, ta, _ = scores.shape
    return best.reshape(b, ta), partner.reshape(b, ta)


def rank_descending(values: torch.Tensor) -> torch.Tensor:
    """Stable descending rank without sort: rank[i] = #{j: v_j > v_i or (v_j == v_i and j < i)}.

    values (B, N) -> (B, N) float32 holding integers. O(N^2) comparisons, N = T/2, cheap next to
    attention. The two conditions exclude each other, so their sum is the 0/1 'ranks before'.
    """
    b, n = values.shape
    vi = values.reshape(b, n, 1)  # (B, N, 1)
    vj = values.reshape(b, 1, n)  # (B, 1, N)
    earlier = _const("earlier", values, n)  # (N, N): [i, j] = j < i
    before = greater(vj, vi) + _eq(vj, vi) * earlier  # (B, N, N)
    return _row_sum(before).reshape(b, n)  # (B, N)


def cumsum_rows(x: torch.Tensor) -> torch.Tensor:
    """Inclusive cumulative sum over the last axis of (B, N) as a matmul with an upper triangle."""
    if indexed():
        return x.cumsum(dim=-1)
    n = x.shape[-1]
    return x @ _const("upper", x, n)  # (B, N)


def matching_scores(
    metric: torch.Tensor,
    class_token: bool = False,
    distill_token: bool = False,
    valid: torch.Tensor | None = None,
    registers: int = 0,
) -> torch.Tensor:
    """Cosine similarity of A = metric[:, 0::2] against B = metric[:, 1::2] -> (B, Ta, Tb).

    Zero vectors normalise to zero (similarity 0 with everything) instead of NaN; scores within
    SAME_DELTA of 1 are exactly 1 (`snap_duplicates`), so copies of a token tie on every backend.
    `valid` (B, T) marks real tokens (1) and padding (0); a pair that mixes the two scores
    NO_MATCH so padding never merges into a real token, two padding tokens score PAD_PAIR.
    Protected tokens (the class token, a distillation token, `registers` register tokens after the
    class token) score PROTECTED: their A rows never merge, their B columns take no merge.
    Scores keep the metric's dtype: an fp16 graph matches in fp16, because XNNPACK cannot cast
    inside a partition (a cast to float32 split ExecuTorch fp16 graphs at every layer). The slot
    arithmetic stays exact in fp16 (integers below 2048); near-ties may rank differently from
    fp32, which validation bounds by PSNR.
    """
    t = metric.shape[1]
    norm = torch.clamp(_norm(metric), min=_NORM_EPS)  # (B, T, 1)
    unit = metric / norm  # (B, T, C)
    a, b = _select(unit, 0), _select(unit, 1)  # (B, Ta, C), (B, Tb, C)
    scores = snap_duplicates(a @ b.transpose(-1, -2))  # (B, Ta, Tb)
    if valid is not None:
        v = valid.to(metric.dtype).reshape(valid.shape[0], t, 1)  # (B, T, 1)
        va, vb = _select(v, 0), _select(v, 1)  # (B, Ta, 1), (B, Tb, 1)
        same = _eq(va, vb.transpose(1, 2))  # (B, Ta, Tb)
        both_pad = (1.0 - va) * (1.0 - vb.transpose(1, 2))  # (B, Ta, Tb)
        scores = _blend(1.0 - both_pad, _blend(same, scores, NO_MATCH), PAD_PAIR)
    ta, tb = scores.shape[-2:]
    pa, pb = protected_split(protected_count(class_token, distill_token, registers))
    if pa:
        scores = _blend(_const("free_row", scores, ta, pa), scores, PROTECTED)  # rows 0..pa-1 of (Ta, 1)
    if pb:
        scores = _blend(_const("free_col", scores, tb, pb), scores, PROTECTED)  # columns 0..pb-1 of (Tb,)
    return scores


def assignment(
    metric: torch.Tensor,
    r: int,
    class_token: bool = False,
    distill_token: bool = False,
    valid: torch.Tensor | None = None,
    registers: int = 0,
) -> torch.Tensor:
    """Output slot of every input token after one bipartite soft matching step.

    metric (B, T, C) -> pos (B, T) float32 holding integers in [0, T - r), or -1.
    Output order is ToMe's: kept A tokens in index order, then all B tokens; with a
    distillation token, [A0, B0, A1.., B1..]; with register tokens (which ToMe has not), the same
    rule generalized: the protected tokens first in their own order, then the other kept A tokens,
    then the other B tokens. The r A tokens whose best similarity is highest
    join their best B partner. A padding token chosen while it has no padding partner is
    dropped (-1), never merged into a real token. Every op is one XNNPACK delegates (arithmetic,
    clamp, ceil, max over a 4-D view, matmuls with constants), so the merge breaks no partition.
    """
    t = check_r(metric.shape[1], r, class_token, distill_token, registers)
    ta = (t + 1) // 2
    n_kept = ta - r
    protected = protected_count(class_token, distill_token, registers)
    scores = matching_scores(metric, class_token, distill_token, valid, registers)  # (B, Ta, Tb)
    scores = force_partner("tome", scores)  # eager only, inside margins.forced_flips(): a near-tie replayed
    best, partner = best_partner(scores)  # (B, Ta), (B, Ta)
    best = force_cut("tome", best, r)
    merged = torch.clamp(float(r) - rank_descending(best), 0.0, 1.0)  # (B, Ta): rank < r, integers
    note_cut("tome", best, r)  # eager only, inside margins.record_margins(): how clear the choices are
    note_partner("tome", scores, merged)
    kept_slot = cumsum_rows(1.0 - merged) - 1.0  # (B, Ta): rank among the kept A tokens
    partner_slot = partner + float(n_kept)  # (B, Ta); a protected B partner never occurs
    shift = _protected_kept_shift(ta, protected)
    if shift is not None:  # protected B tokens sit among the first slots: [A0, B0, A1, ..]
        kept_slot = kept_slot + table_tensor(shift, kept_slot)  # merged rows' values are replaced below
    a_slot = kept_slot + merged * (partner_slot - kept_slot)  # (B, Ta): where(merged, partner, kept)
    if valid is not None:
        orphan = merged * (1.0 - greater(best, NO_MATCH / 2))  # chosen with no partner of its kind
        a_slot = _blend(1.0 - orphan, a_slot, -1.0)
    # Back to token order: A token i sits at 2i, B token j at 2j + 1 (a one-hot matmul, exact).
    a_to_token = _const("to_token", a_slot, ta, t)  # (Ta, T)
    b_in_token = table_tensor(_b_in_token(t, n_kept, protected), a_slot)  # (T,)
    return a_slot @ a_to_token + b_in_token  # (B, T)


def check_r(t: int, r: int, class_token: bool, distill_token: bool, registers: int = 0) -> int:
    """Raise InputError unless one step may merge r of t tokens; returns t."""
    if (distill_token or registers) and not class_token:
        raise InputError("a distillation token or register tokens need a class token in front of them")
    if registers < 0:
        raise InputError(f"registers={registers}: a count of register tokens, 0 or more")
    limit = max_r(t, class_token, distill_token, registers)
    if not 0 <= r <= limit:
        raise InputError(f"r={r} is out of range for {t} tokens: allowed 0..{limit}")
    return t


def one_hot_assignment(pos: torch.Tensor, slots: int, dtype: torch.dtype) -> torch.Tensor:
    """pos (B, T) -> M (B, slots, T) with M[b, p, t] = (pos[b, t] == p), as `_eq`."""
    idx = _const("slot_ids", pos, slots)  # (T', 1)
    b, t = pos.shape
    return _eq(pos.reshape(b, 1, t), idx).to(dtype)  # (B, T', T)


def bipartite_soft_matching(
    metric: torch.Tensor,
    r: int,
    class_token: bool = False,
    distill_token: bool = False,
    valid: torch.Tensor | None = None,
    registers: int = 0,
) -> torch.Tensor:
    """ToMe's matching step as a one-hot matrix M (B, T - r, T), in the dtype of `metric`."""
    pos = assignment(metric, r, class_token, distill_token, valid, registers)
    return one_hot_assignment(pos, metric.shape[1] - r, metric.dtype)


class SlotMerge(Protocol):
    """A matching step held as indices (merge_indexed.py): sums and averages into the T' slots."""

    def sum(self, x: torch.Tensor) -> torch.Tensor: ...

    def wavg(self, x: torch.Tensor, size: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...


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



# The building blocks other methods' static ops share (pitome.py, diffrate.py), under public names.
row_sum = _row_sum
l2_norm = _norm


def constant(table: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    """A numpy table as a graph constant in the dtype and device of `like` (lifted, no cast node)."""
    return table_tensor(table, like)
