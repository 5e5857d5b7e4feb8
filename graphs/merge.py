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
"""

from __future__ import annotations

import torch

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


def max_r(tokens: int, class_token: bool = False, distill_token: bool = False) -> int:
    """The largest r one layer allows: at most half the unprotected tokens merge."""
    protected = int(class_token) + int(distill_token)
    return max((tokens - protected) // 2, 0)


def _split_positions(tokens: int) -> tuple[list[int], list[int]]:
    """Index lists of the alternate split A = tokens[0::2], B = tokens[1::2]."""
    return list(range(0, tokens, 2)), list(range(1, tokens, 2))


def _blend(keep: torch.Tensor, x: torch.Tensor, other: float) -> torch.Tensor:
    """where(keep, x, other) as arithmetic on a 0/1 float mask: exact, and converters without
    scalar `where` or boolean and/or (Core ML's torch frontend) accept it."""
    return x * keep + other * (1.0 - keep)


def _best_partner(scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Max over B and the lowest B index reaching it. scores (B, Ta, Tb) -> (B, Ta), (B, Ta) float."""
    tb = scores.shape[-1]
    best = scores.amax(dim=-1, keepdim=True)  # (B, Ta, 1)
    idx = torch.arange(tb, device=scores.device, dtype=torch.float32)  # (Tb,)
    at_max = (scores == best).to(torch.float32)  # (B, Ta, Tb)
    return best.squeeze(-1), _blend(at_max, idx, float(tb)).amin(dim=-1)


def _rank_descending(values: torch.Tensor) -> torch.Tensor:
    """Stable descending rank without sort: rank[i] = #{j: v_j > v_i or (v_j == v_i and j < i)}.

    values (B, N) -> (B, N) float32 holding integers. O(N^2) comparisons, N = T/2, cheap next to
    attention. The two conditions exclude each other, so their sum is the 0/1 'ranks before'.
    """
    n = values.shape[-1]
    vi = values.unsqueeze(-1)  # (B, N, 1)
    vj = values.unsqueeze(-2)  # (B, 1, N)
    idx = torch.arange(n, device=values.device)
    earlier = (idx.unsqueeze(0) < idx.unsqueeze(1)).to(torch.float32)  # (N, N): [i, j] = j < i
    before = (vj > vi).to(torch.float32) + (vj == vi).to(torch.float32) * earlier  # (B, N, N)
    return before.sum(dim=-1)


def matching_scores(
    metric: torch.Tensor,
    class_token: bool = False,
    distill_token: bool = False,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cosine similarity of A = metric[:, 0::2] against B = metric[:, 1::2] -> (B, Ta, Tb) float32.

    Zero vectors normalise to zero (similarity 0 with everything) instead of NaN.
    `valid` (B, T) marks real tokens (1) and padding (0); a pair that mixes the two scores
    NO_MATCH so padding never merges into a real token, two padding tokens score PAD_PAIR. Scores are float32 whatever the model
    precision, so the assignment does not change with --precision.
    """
    metric = metric.to(torch.float32)
    norm = metric.norm(dim=-1, keepdim=True).clamp_min(_NORM_EPS)
    unit = metric / norm  # (B, T, C)
    a, b = unit[:, 0::2], unit[:, 1::2]  # (B, Ta, C), (B, Tb, C)
    scores = a @ b.transpose(-1, -2)  # (B, Ta, Tb)
    if valid is not None:
        va, vb = valid[:, 0::2], valid[:, 1::2]  # (B, Ta), (B, Tb)
        same = (va.unsqueeze(-1) == vb.unsqueeze(-2)).to(torch.float32)  # (B, Ta, Tb)
        both_pad = (1.0 - va).unsqueeze(-1) * (1.0 - vb).unsqueeze(-2)  # (B, Ta, Tb)
        scores = _blend(1.0 - both_pad, _blend(same, scores, NO_MATCH), PAD_PAIR)
    ta, tb = scores.shape[-2:]
    if class_token:
        free_row = (torch.arange(ta, device=scores.device).unsqueeze(-1) != 0).to(torch.float32)  # (Ta, 1)
        scores = _blend(free_row, scores, PROTECTED)
    if distill_token:
        free_col = (torch.arange(tb, device=scores.device).unsqueeze(0) != 0).to(torch.float32)  # (1, Tb)
        scores = _blend(free_col, scores, PROTECTED)
    return scores


def assignment(
    metric: torch.Tensor,
    r: int,
    class_token: bool = False,
    distill_token: bool = False,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Output slot of every input token after one bipartite soft matching step.

    metric (B, T, C) -> pos (B, T) float32 holding integers in [0, T - r), or -1.
    Output order is ToMe's: kept A tokens in index order, then all B tokens; with a
    distillation token, [A0, B0, A1.., B1..]. The r A tokens whose best similarity is highest
    join their best B partner. A padding token chosen while it has no padding partner is
    dropped (-1), never merged into a real token.
    """
    if distill_token and not class_token:
        raise ValueError("a distillation token needs a class token in front of it")
    t = metric.shape[1]
    limit = max_r(t, class_token, distill_token)
    if not 0 <= r <= limit:
        raise ValueError(f"r={r} is out of range for {t} tokens: allowed 0..{limit}")
    ta, tb = (t + 1) // 2, t // 2
    n_kept = ta - r
    scores = matching_scores(metric, class_token, distill_token, valid)  # (B, Ta, Tb)
    best, partner = _best_partner(scores)  # (B, Ta), (B, Ta)
    merged = (_rank_descending(best) < r).to(torch.float32)  # (B, Ta) 0/1
    kept_slot = torch.cumsum(1.0 - merged, dim=-1) - 1.0  # (B, Ta)
    b_slot = [float(n_kept + j) for j in range(tb)]
    partner_slot = partner + float(n_kept)  # (B, Ta)
    if distill_token:
        # ToMe's order [A0, B0, A1.., B1..]: kept A tokens after the first move up one slot.
        kept_slot = kept_slot + (kept_slot >= 1.0).to(torch.float32)
        b_slot[0] = 1.0  # partner 0 never occurs: B0 is protected
    a_slot = kept_slot + merged * (partner_slot - kept_slot)  # (B, Ta): where(merged, partner, kept)
    if valid is not None:
        orphan = merged * (best <= NO_MATCH / 2).to(torch.float32)  # chosen with no partner of its kind
        a_slot = _blend(1.0 - orphan, a_slot, -1.0)
    b_slots = torch.tensor(b_slot, device=metric.device).unsqueeze(0).expand(a_slot.shape[0], tb)  # (B, Tb)
    split = torch.cat([a_slot, b_slots], dim=1)  # (B, T) in split order [A..., B...]
    a_idx, b_idx = _split_positions(t)
    inverse = [0] * t
    for i, j in enumerate(a_idx + b_idx):
        inverse[j] = i
    inv = torch.tensor(inverse, dtype=torch.int64, device=metric.device)
    return split.index_select(1, inv)  # (B, T) in token order


def one_hot_assignment(pos: torch.Tensor, slots: int, dtype: torch.dtype) -> torch.Tensor:
    """pos (B, T) -> M (B, slots, T) with M[b, p, t] = (pos[b, t] == p)."""
    idx = torch.arange(slots, device=pos.device, dtype=pos.dtype).view(1, slots, 1)  # (1, T', 1)
    return (pos.unsqueeze(1) == idx).to(dtype)  # (B, T', T)


def bipartite_soft_matching(
    metric: torch.Tensor,
    r: int,
    class_token: bool = False,
    distill_token: bool = False,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """ToMe's matching step as a one-hot matrix M (B, T - r, T), in the dtype of `metric`."""
    pos = assignment(metric, r, class_token, distill_token, valid)
    return one_hot_assignment(pos, metric.shape[1] - r, metric.dtype)


def merge_wavg(
    m: torch.Tensor, x: torch.Tensor, size: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Size-weighted average merge. m (B, T', T), x (B, T, C), size (B, T, 1) -> (B, T', C), (B, T', 1)."""
    total = m @ size  # (B, T', 1)
    merged = (m @ (x * size)) / total.clamp_min(_NORM_EPS)  # (B, T', C)
    return merged, total


def merge_sum(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Sum of the inputs landing in each slot: sources (B, T, N0) -> (B, T', N0), masks, sizes."""
    return m @ x


def unmerge(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Copy every merged token back to each of its inputs. m (B, T', T), x (B, T', C) -> (B, T, C)."""
    return m.transpose(1, 2) @ x


def attention_bias(size: torch.Tensor | None, valid: torch.Tensor | None) -> torch.Tensor | None:
    """Additive key bias (B, 1, 1, T): log(size) for proportional attention, MASK_BIAS on padding."""
    bias = None
    if size is not None:
        bias = size.squeeze(-1).log()  # (B, T)
    if valid is not None:
        pad = (1.0 - valid) * MASK_BIAS  # (B, T)
        bias = pad if bias is None else bias + pad
    return None if bias is None else bias[:, None, None, :]  # (B, 1, 1, T)
