"""PiToMe (Tran et al., NeurIPS 2024; hchautran/PiToMe `algo/pitome/`) for vision encoders, static.

Per layer, after attention and before the MLP (their `PiToMeBlock`), on the non-protected tokens'
keys averaged over heads: cosine similarity sim (T, T), energy = row mean of ELU(sim - margin),
tokens ranked by energy (descending), r = floor(T - T * ratio).
- `pitome_bsm` layers (the first ceil(L/2)): all tokens in energy order split alternately into A
  and B; ToMe's bipartite rule merges the r A tokens with the highest best-similarity into their
  most similar B. Output: protected, kept A (by best-similarity, descending), B (energy order).
- `pitome` layers (the rest): only the 2r highest-energy tokens may merge (alternately A/B, every
  A into its most similar B); the others are kept. Output: protected, kept (energy order), B.
Margins 0.75 - 0.75 i / L (their DeiT patch); size-weighted averages as ToMe's `merge_wavg`;
no proportional attention by default (their block calls attention without sizes).

Static: the energy order is a permutation matrix P (B, T, T) built from a comparison rank (no
argsort), similarities in energy order are P sim P^T rows and columns (one-hot matmuls: exact),
and every token's output slot goes back to token order through P, so the merge is the same
one-hot matmul as ToMe's. Ties: equal energies rank by token index and equal best-similarities by
A order (a stable sort would do the same); a best partner is the first maximum in B order, as
torch.max returns it. The original's argsort is not stable, so on exact ties it has no unique answer.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch.fx.traceback import annotate

from ..spec.grammar import SpecError, parse_flag, parse_fraction, parse_int, parse_items
from .constants import NO_MATCH, PAD_PAIR, table_tensor
from .layers import MERGE_ANNOTATION, LayerFns, TokenState, attend
from .margins import note_cut, note_order, note_partner
from .merge import ARITHMETIC, merge_sum, merge_wavg, one_hot_assignment, rank_descending
from .method import Method
from .ops import MergeOps
from .plan import MergePlan, PlanShape, counts_plan

GRAMMAR = ("pitome:ratio=F[,F2,...][,margin=F][,bsm_layers=N][,prop_attn=0|1][,trace_source=0|1] "
           "(F: kept fraction per layer, e.g. 0.9, merging r = floor(T - T*F) <= T/2 tokens; on text one F merges in "
           "the first 3 layers, as the original)")
DEFAULT_MARGIN = 0.75  # vision: layer i uses margin - margin * i / L (their patch/deit.py)
TEXT_MARGIN, TEXT_MARGIN_SLOPE = 0.9, 0.25  # text: 0.9 - 0.25 i / L, or a constant margin given (their patch/bert.py)
TEXT_LAYERS = 3  # text: one ratio merges in the first 3 layers only (their patch/bert.py)
_EPS = 1e-12  # F.normalize's


@dataclass(frozen=True)
class PitomeParams:
    ratio: tuple[float, ...] = (1.0,)  # one for every layer (text: the first 3), or one per layer (missing keep all)
    margin: float | None = None  # None: the family's schedule; vision: margin - margin * i / L, text: constant
    bsm_layers: int | None = None  # layers using pitome_bsm; None: ceil(L / 2)
    prop_attn: bool = False
    trace_source: bool = False

    def per_layer(self, num_layers: int, text: bool = False) -> list[float]:
        if len(self.ratio) == 1:
            merging = min(TEXT_LAYERS, num_layers) if text else num_layers
            return [self.ratio[0]] * merging + [1.0] * (num_layers - merging)
        if len(self.ratio) > num_layers:
            raise SpecError(f"{len(self.ratio)} ratio values given for a model with {num_layers} layers")
        return list(self.ratio) + [1.0] * (num_layers - len(self.ratio))

    def describe(self) -> str:
        text = "ratio=" + ",".join(_decimal(v) for v in self.ratio)
        if self.margin is not None:
            text += f",margin={_decimal(self.margin)}"
        if self.bsm_layers is not None:
            text += f",bsm_layers={self.bsm_layers}"
        return text + (",prop_attn=1" if self.prop_attn else "") + (",trace_source=1" if self.trace_source else "")

    def to_json(self) -> dict:
        return {"ratio": list(self.ratio), "margin": self.margin, "bsm_layers": self.bsm_layers,
                "prop_attn": self.prop_attn, "trace_source": self.trace_source}


def _decimal(value: float) -> str:
    return np.format_float_positional(value, trim="-")  # 0.9, 1: what parse_fraction reads back


def parse(spec: str, body: str) -> PitomeParams:
    values, options = parse_items(spec, body, first="ratio", value=parse_fraction,
                                  keys=("margin", "bsm_layers", "prop_attn", "trace_source"))
    bsm = options.get("bsm_layers")
    margin = options.get("margin")
    return PitomeParams(ratio=tuple(values), margin=None if margin is None else parse_fraction(spec, margin, "margin"),
                        bsm_layers=None if bsm is None else parse_int(spec, bsm),
                        prop_attn=parse_flag(spec, options.get("prop_attn", "0")),
                        trace_source=parse_flag(spec, options.get("trace_source", "0")))


def merge_count(tokens: int, ratio: float) -> int:
    """r for `tokens` mergeable tokens at kept fraction `ratio`: the original's floor(T - T * ratio)."""
    return math.floor(tokens - tokens * ratio) if ratio < 1.0 else 0


def ratios_for_counts(removed: list[int] | tuple[int, ...], tokens: list[int] | tuple[int, ...],
                      protected: int) -> tuple[float, ...]:
    """Kept fractions that make PiToMe remove exactly `removed[i]` tokens at layer i, entered by
    `tokens[i]` tokens (another method's plan, e.g. ToMe's): 1 - (r + 0.5) / T of the T
    non-protected tokens, to 6 decimals (floor(T - T * ratio) = r with a margin of 0.5)."""
    ratios = []
    for r, t in zip(removed, tokens, strict=False):
        ratio = 1.0 if r == 0 else round(1.0 - (r + 0.5) / (t - protected), 6)
        if merge_count(t - protected, ratio) != r:
            raise SpecError(f"no kept ratio gives r={r} of {t - protected} tokens")
        ratios.append(ratio)
    return tuple(ratios)


def plan(params: PitomeParams, shape: PlanShape) -> MergePlan:
    """r per layer from each layer's own token count; r > T/2 is refused (the check is on r, not on
    ratio >= 0.5: a ratio just below 0.5 whose floor merges at most half is taken). A padded
    (text) model gets `pitome_text` layers: their BERT patch's ratio and margin schedules."""
    layers = shape.num_layers
    if shape.padded:
        if params.bsm_layers is not None:
            raise SpecError("bsm_layers is for vision encoders; pitome: on text uses pitome_text in every layer")
        if params.margin is not None and params.margin >= 1.0:
            raise SpecError("margin=1 on text gives sigma = 1 - margin = 0; allowed 0..0.99")
        bsm = 0
        margins = tuple(params.margin if params.margin is not None else TEXT_MARGIN - TEXT_MARGIN_SLOPE * (i / layers)
                        for i in range(layers))
    else:
        bsm = math.ceil(layers * 0.5) if params.bsm_layers is None else params.bsm_layers
        margin = DEFAULT_MARGIN if params.margin is None else params.margin
        margins = tuple(margin - margin * (i / layers) for i in range(layers))
    if bsm > layers:
        raise SpecError(f"bsm_layers={bsm} exceeds the model's {layers} layers")
    protected = shape.protected.count
    removed, tokens = [], shape.tokens
    for layer, ratio in enumerate(params.per_layer(layers, text=shape.padded)):
        r = merge_count(tokens - protected, ratio)
        if r > (tokens - protected) // 2:
            raise SpecError(f"ratio={ratio} at layer {layer} merges r = floor(T - T * ratio) = {r} of "
                            f"T = {tokens - protected} tokens; at most half (r <= {(tokens - protected) // 2}) may merge")
        removed.append(r)
        tokens -= r
    data = (("margin_per_layer", margins), ("bsm_layers", bsm))
    return counts_plan("pitome", removed, shape, params.prop_attn, params.trace_source,
                       data=data + ((("text", True),) if shape.padded else ()))


def energy_order(metric: torch.Tensor, margin: float,
                 ops: MergeOps = ARITHMETIC) -> tuple[torch.Tensor, torch.Tensor]:
    """metric (B, T, C) -> similarities (B, T, T) and P (B, T, T): P[b, k, i] = 1 where token i is
    k-th by energy (descending, ties by index). ARITHMETIC spells the ELU as clamp + exp and the
    mean as a matmul (delegable); INDEXED as the original's F.elu and mean."""
    unit = metric / torch.clamp(ops.norm(metric), min=_EPS)  # (B, T, C), F.normalize
    sim = unit @ unit.transpose(-1, -2)  # (B, T, T)
    t = metric.shape[1]
    energy = ops.row_mean(ops.elu(sim - margin))  # (B, T)
    note_order("pitome", energy)  # eager only, inside margins.record_margins(): the order picks A, B and slots
    return sim, one_hot_assignment(rank_descending(energy, ops), t, metric.dtype, ops)


@functools.lru_cache(maxsize=256)
def _tables(t: int, r: int, bsm: bool) -> dict[str, np.ndarray]:
    """Constants in energy order k: rows A/B select, A -> k, and the fixed part of every slot."""
    k = np.arange(t)
    if bsm:
        a_pos, b_pos = k[0::2], k[1::2]
        base = np.zeros(t, np.float32)
        base[1::2] = (len(a_pos) - r) + np.arange(len(b_pos))  # B j -> after the kept A tokens
    else:
        a_pos, b_pos = k[0:2 * r:2], k[1:2 * r:2]
        base = np.where(k >= 2 * r, k - 2 * r, 0).astype(np.float32)  # kept tokens in energy order
        base[1:2 * r:2] = (t - 2 * r) + np.arange(r)  # B j after them
        base[0:2 * r:2] = t - 2 * r  # A i: + its partner's index
    sel_a = (a_pos[:, None] == k[None, :]).astype(np.float32)  # (Ta, T)
    sel_b = (b_pos[:, None] == k[None, :]).astype(np.float32)  # (Tb, T)
    return {"sel_a": sel_a, "sel_b": sel_b, "a_to_k": sel_a.copy(), "base": base}


def pitome_assignment(metric: torch.Tensor, r: int, margin: float, bsm: bool, ops: MergeOps = ARITHMETIC) -> torch.Tensor:
    """Output slot (B, T) float of every (non-protected) token after one PiToMe step, T' = T - r."""
    b, t, _ = metric.shape
    sim, order = energy_order(metric, margin, ops)  # (B, T, T), P (B, T, T)
    tab = {k: table_tensor(v, metric) for k, v in _tables(t, r, bsm).items()}
    pa, pb = tab["sel_a"] @ order, tab["sel_b"] @ order  # (B, Ta, T), (B, Tb, T): rows of P
    scores = pa @ sim @ pb.transpose(-1, -2)  # (B, Ta, Tb): sim in energy order, exact
    best, partner = ops.best_partner(scores)  # (B, Ta), first maximum in B order
    if bsm:
        ta = scores.shape[1]
        rank = rank_descending(best, ops)  # (B, Ta): ToMe's edge order
        merged = torch.clamp(float(r) - rank, 0.0, 1.0)  # (B, Ta): rank < r
        note_cut("pitome", best, r)  # eager only, inside margins.record_margins()
        note_partner("pitome", scores, merged)
        a_slot = (rank - float(r)) + merged * (float(ta - r) + partner - (rank - float(r)))  # kept: rank - r
        slot_k = a_slot @ tab["a_to_k"] + tab["base"]  # (B, T) in energy order
    else:
        note_partner("pitome", scores, torch.ones_like(best))  # every A (the first r) merges
        slot_k = partner @ tab["a_to_k"] + tab["base"]  # (B, T): A i -> (T - 2r) + partner
    return (slot_k.reshape(b, 1, t) @ order).reshape(b, t)  # back to token order: pos[i] = slot_k[rank i]


@functools.lru_cache(maxsize=256)
def _shift(t: int, p: int) -> tuple[np.ndarray, np.ndarray]:
    """(T, p + T) one-hot [i, p + i] and the slots (p + T,): 0..p-1, then p."""
    move = (np.arange(p + t)[None, :] == np.arange(t)[:, None] + p).astype(np.float32)
    return move, np.minimum(np.arange(p + t), p).astype(np.float32)


def with_protected(pos: torch.Tensor, protected: int, dropped: bool = False) -> torch.Tensor:
    """Prefix `protected` tokens that keep their slots: (B, T) -> (B, protected + T), as a matmul
    with constants (exact; no concatenation of a broadcast constant). dropped: `pos` may hold -1
    (a dropped token), which stays -1 instead of moving to slot protected - 1."""
    if protected == 0:
        return pos
    move, head = _shift(pos.shape[1], protected)
    if dropped:  # pos + p where pos >= 0, -1 stays; the head then adds p only to the protected slots' 0..p-1
        pos = pos + float(protected) * torch.clamp(pos + 1.0, 0.0, 1.0) - float(protected)
    return pos @ table_tensor(move, pos) + table_tensor(head, pos)  # (B, p + T)


# ---- Text (`pitome_text`, their patch/bert.py) ----------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _text_tables(t: int, r: int) -> dict[str, np.ndarray]:
    """Constants in energy order k for `pitome_text`: A = ranks 0..r-1, B = ranks r..2r-1 (halves,
    not alternation), kept = ranks 2r..; slots: kept (energy order), then B (energy order); an A
    slot is (T - 2r) + its partner, added at run time."""
    k = np.arange(t)
    sel_a = (k[:r, None] == k[None, :]).astype(np.float32)  # (r, T)
    sel_b = ((k[:r] + r)[:, None] == k[None, :]).astype(np.float32)  # (r, T)
    base = np.where(k >= 2 * r, k - 2 * r, 0).astype(np.float32)
    base[r:2 * r] = (t - 2 * r) + np.arange(r)
    return {"sel_a": sel_a, "sel_b": sel_b, "a_to_k": sel_a.copy(), "base": base}


def text_energy(sim: torch.Tensor, margin: float, valid: torch.Tensor | None, ops: MergeOps = ARITHMETIC) -> torch.Tensor:
    """Gaussian-kernel energy of their `pitome_text`, sigma = 1 - margin: row mean of
    exp(-((1 - sim) / sigma)^2 / 2) / (sigma sqrt(2 pi)). sim (B, T, T) -> (B, T).

    With `valid` (B, T) (1 real, 0 padding), a real token's row counts real columns only (a
    padding column adds 0; the mean still divides by T, the same order), and a padding token gets
    an energy above every real one (1 + the kernel's peak), so padding ranks first and merges first.
    The square is a product and the mean a row sum (a matmul with ones in ARITHMETIC: delegable)
    times one constant; the original's `dist ** 2` and `mean(-1) * 1 / (sigma sqrt(2 pi))` agree to
    float rounding."""
    sigma = 1.0 - margin
    t = sim.shape[-1]
    dist = (1.0 - sim) / sigma  # (B, T, T)
    kernel = torch.exp(-((dist * dist) * 0.5))  # (B, T, T), in (0, 1]
    if valid is not None:
        kernel = kernel * valid.reshape(valid.shape[0], 1, t)  # (B, T, T): padding columns 0
    energy = ops.row_sum(kernel).reshape(kernel.shape[0], t) * (1.0 / (t * sigma * math.sqrt(2 * math.pi)))
    if valid is None:
        return energy
    peak = 1.0 / (sigma * math.sqrt(2 * math.pi))  # the largest energy a real token can have
    return energy * valid + (peak + 1.0) * (1.0 - valid)  # padding first; exact on 0/1 masks


def pitome_text_assignment(metric: torch.Tensor, r: int, margin: float, valid: torch.Tensor | None = None,
                           ops: MergeOps = ARITHMETIC) -> torch.Tensor:
    """Output slot (B, T) float of every (non-class) token after one `pitome_text` step, T' = T - r:
    tokens ranked by Gaussian energy (descending, ties by index), the r highest are A, the next r
    B, every A joins its most similar B (first maximum in B order). Output: kept tokens (ranks 2r..,
    energy order), then B (energy order). With `valid`, padding ranks first; a padding A joins a
    padding B (PAD_PAIR) and one with no padding B is dropped (-1), so padding never merges with a
    real token (as tomobile's ToMe)."""
    b, t, _ = metric.shape
    if not 0 < 2 * r <= t:
        raise ValueError(f"pitome_text merges 0 < r <= T/2 tokens; got r={r} of {t}")
    unit = metric / torch.clamp(ops.norm(metric), min=_EPS)  # (B, T, C), F.normalize
    sim = unit @ unit.transpose(-1, -2)  # (B, T, T)
    energy = text_energy(sim, margin, valid, ops)  # (B, T)
    note_order("pitome_text", energy)  # inside margins.record_margins(): the order picks A, B and slots
    order = one_hot_assignment(rank_descending(energy, ops), t, metric.dtype, ops)  # P (B, T, T)
    tab = {k: table_tensor(v, metric) for k, v in _text_tables(t, r).items()}
    pa, pb = tab["sel_a"] @ order, tab["sel_b"] @ order  # (B, r, T) each: rows of P
    scores = pa @ sim @ pb.transpose(-1, -2)  # (B, r, r): sim of A against B, exact
    if valid is not None:
        v = valid.reshape(b, t, 1)
        va, vb = pa @ v, (pb @ v).transpose(1, 2)  # (B, r, 1), (B, 1, r): 0/1
        real, pads = va * vb, (1.0 - va) * (1.0 - vb)  # (B, r, r) 0/1 masks
        scores = scores * real + PAD_PAIR * pads + NO_MATCH * (1.0 - real - pads)
    best, partner = ops.best_partner(scores)  # (B, r), first maximum in B order
    note_partner("pitome_text", scores, torch.ones_like(best))
    a_slot = partner + float(t - 2 * r)  # (B, r)
    if valid is not None:
        orphan = 1.0 - ops.greater(best, NO_MATCH / 2)  # (B, r): a padding A with no padding B
        a_slot = a_slot * (1.0 - orphan) - orphan
    slot_k = a_slot @ tab["a_to_k"] + tab["base"]  # (B, T) in energy order
    return (slot_k.reshape(b, 1, t) @ order).reshape(b, t)  # back to token order


def _text_merge(x: torch.Tensor, metric: torch.Tensor, state: TokenState, i: int, plan: MergePlan,
                ops: MergeOps) -> tuple[torch.Tensor, ...]:
    """Their PiToMeBertLayer's merge: `pitome_text` on the non-class keys, with unit sizes in every
    layer, as theirs (`merge_wavg(merge, x, None)`); sizes are still summed (proportional attention
    with prop_attn=1). The padding mask follows the merge. Returns x, size, source, valid."""
    r, protected = plan.r[i], plan.protected.count
    valid = None if state.valid is None else state.valid[:, protected:]  # (B, T - p)
    pos = pitome_text_assignment(metric, r, plan.get("margin_per_layer")[i], valid, ops)
    m = one_hot_assignment(with_protected(pos, protected, valid is not None), x.shape[1] - r, x.dtype, ops)  # (B, T', T)
    x = merge_sum(m, x) / torch.clamp(ops.row_sum(m), min=1.0)  # (B, T', C): plain mean of each slot
    size = merge_sum(m, state.size)  # (B, T', 1)
    source = None if state.source is None else merge_sum(m, state.source)
    if state.valid is not None:  # reshapes, not (un)squeeze: XNNPACK delegates views, not squeeze_copy
        b, t = state.valid.shape
        valid = merge_sum(m, state.valid.reshape(b, t, 1)).reshape(b, t - r).clamp(max=1.0)  # (B, T')
    return x, size, source, valid


def _vision_merge(x: torch.Tensor, metric: torch.Tensor, state: TokenState, i: int, plan: MergePlan,
                  ops: MergeOps) -> tuple[torch.Tensor, ...]:
    """Their PiToMeBlock's merge: pitome_bsm in the first layers, pitome later, size-weighted.
    Returns x, size, source, valid."""
    r, protected = plan.r[i], plan.protected.count
    pos = pitome_assignment(metric, r, plan.get("margin_per_layer")[i], i < plan.get("bsm_layers"), ops)
    m = one_hot_assignment(with_protected(pos, protected), x.shape[1] - r, x.dtype, ops)  # (B, T', T)
    x, size = merge_wavg(m, x, state.size, state.unit_size)
    source = None if state.source is None else merge_sum(m, state.source)
    return x, size, source, state.valid


def layer(fns: LayerFns, state: TokenState, i: int, plan: MergePlan, ops: MergeOps) -> TokenState:
    """Attention, then PiToMe merges r tokens on the keys averaged over heads (protected tokens left
    out), then the MLP: `pitome_text` on BERT-style text, pitome_bsm / pitome on vision."""
    x, keys, _ = attend(fns, state, plan.prop_attn)
    if plan.r[i] == 0:
        return state._replace(x=fns.feed_forward(x))
    merge = _text_merge if dict(plan.data).get("text") else _vision_merge
    protected = plan.protected.count
    with annotate(MERGE_ANNOTATION):
        metric = ops.head_mean(keys)  # (B, T, d); theirs on text sums over heads: the same cosines
        if protected:  # no empty-prefix slice: exported, `[:, 0:]` is an alias_copy on portable kernels
            metric = metric[:, protected:]  # (B, T - p, d)
        x, size, source, valid = merge(x, metric, state, i, plan, ops)
    return TokenState(fns.feed_forward(x), size, source, valid, unit_size=False)


PITOME = Method(
    name="pitome",
    summary="PiToMe energy-protected merging (Tran et al. 2024, hchautran/PiToMe), vision and BERT-style text",
    grammar=GRAMMAR, parse=parse, plan=plan, layer=layer)
