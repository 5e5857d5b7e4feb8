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
import torch.nn.functional as F
from torch.fx.traceback import annotate

from .layers import MERGE_ANNOTATION, LayerFns, TokenState, attend, head_mean
from .merge import (best_partner, constant, indexed, l2_norm, merge_sum, merge_wavg, one_hot_assignment,
                    rank_descending, row_sum)
from .methods import Method, register_method
from .plan import MergePlan, PlanShape, counts_plan
from .spec import SpecError, parse_flag, parse_fraction, parse_int, parse_items

GRAMMAR = ("pitome:ratio=F[,F2,...][,margin=F][,bsm_layers=N][,prop_attn=0|1][,trace_source=0|1] "
           "(F: kept fraction per layer, e.g. 0.9)")
DEFAULT_MARGIN = 0.75
_EPS = 1e-12  # F.normalize's


@dataclass(frozen=True)
class PitomeParams:
    ratio: tuple[float, ...] = (1.0,)  # one for every layer, or one per layer (missing layers keep all)
    margin: float = DEFAULT_MARGIN  # layer i uses margin - margin * i / L
    bsm_layers: int | None = None  # layers using pitome_bsm; None: ceil(L / 2)
    prop_attn: bool = False
    trace_source: bool = False

    def per_layer(self, num_layers: int) -> list[float]:
        if len(self.ratio) == 1:
            return [self.ratio[0]] * num_layers
        if len(self.ratio) > num_layers:
            raise SpecError(f"{len(self.ratio)} ratio values given for a model with {num_layers} layers")
        return list(self.ratio) + [1.0] * (num_layers - len(self.ratio))

    def describe(self) -> str:
        text = "ratio=" + ",".join(_decimal(v) for v in self.ratio)
        if self.margin != DEFAULT_MARGIN:
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
    return PitomeParams(ratio=tuple(values), margin=parse_fraction(spec, options.get("margin", "0.75"), "margin"),
                        bsm_layers=None if bsm is None else parse_int(spec, bsm),
                        prop_attn=parse_flag(spec, options.get("prop_attn", "0")),
                        trace_source=parse_flag(spec, options.get("trace_source", "0")))


def merge_count(tokens: int, ratio: float) -> int:
    """r for `tokens` mergeable tokens at kept fraction `ratio`: the original's floor(T - T * ratio)."""
    return math.floor(tokens - tokens * ratio) if ratio < 1.0 else 0


def plan(params: PitomeParams, shape: PlanShape) -> MergePlan:
    """r per layer from each layer's own token count; r > T/2 (ratio < 0.5) is refused."""
    if shape.padded:
        raise SpecError("pitome: is for vision encoders; text encoders (padding) are not supported yet")
    layers = shape.num_layers
    bsm = math.ceil(layers * 0.5) if params.bsm_layers is None else params.bsm_layers
    if bsm > layers:
        raise SpecError(f"bsm_layers={bsm} exceeds the model's {layers} layers")
    protected = shape.protected
    removed, tokens = [], shape.tokens
    for layer, ratio in enumerate(params.per_layer(layers)):
        r = merge_count(tokens - protected, ratio)
        if r > (tokens - protected) // 2:
            raise SpecError(f"ratio={ratio} at layer {layer} merges {r} of {tokens - protected} tokens; "
                            "at most half may merge (ratio >= 0.5)")
        removed.append(r)
        tokens -= r
    margins = tuple(params.margin - params.margin * (i / layers) for i in range(layers))
    return counts_plan("pitome", removed, shape, params.prop_attn, params.trace_source,
                       data=(("margin_per_layer", margins), ("bsm_layers", bsm), ("protected", protected)))


def energy_order(metric: torch.Tensor, margin: float) -> tuple[torch.Tensor, torch.Tensor]:
    """metric (B, T, C) -> similarities (B, T, T) and P (B, T, T): P[b, k, i] = 1 where token i is
    k-th by energy (descending, ties by index)."""
    unit = metric / torch.clamp(l2_norm(metric), min=_EPS)  # (B, T, C), F.normalize
    sim = unit @ unit.transpose(-1, -2)  # (B, T, T)
    t = metric.shape[1]
    if torch.compiler.is_exporting() and not indexed():
        shifted = sim - margin  # (B, T, T)
        # ELU as clamp + exp (XNNPACK delegates both; its ELU node stayed on portable kernels)
        act = torch.clamp(shifted, min=0.0) + torch.exp(torch.clamp(shifted, max=0.0)) - 1.0
        energy = row_sum(act).reshape(act.shape[0], t) * (1.0 / t)  # (B, T): a delegable mean
    else:
        act = F.elu(sim - margin)  # (B, T, T)
        energy = act.mean(dim=-1)  # (B, T): eager, bit-equal to the original's
    return sim, one_hot_assignment(rank_descending(energy), t, metric.dtype)


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


def pitome_assignment(metric: torch.Tensor, r: int, margin: float, bsm: bool) -> torch.Tensor:
    """Output slot (B, T) float of every (non-protected) token after one PiToMe step, T' = T - r."""
    b, t, _ = metric.shape
    sim, order = energy_order(metric, margin)  # (B, T, T), P (B, T, T)
    tab = {k: constant(v, metric) for k, v in _tables(t, r, bsm).items()}
    pa, pb = tab["sel_a"] @ order, tab["sel_b"] @ order  # (B, Ta, T), (B, Tb, T): rows of P
    scores = pa @ sim @ pb.transpose(-1, -2)  # (B, Ta, Tb): sim in energy order, exact
    best, partner = best_partner(scores)  # (B, Ta), first maximum in B order
    if bsm:
        ta = scores.shape[1]
        rank = rank_descending(best)  # (B, Ta): ToMe's edge order
        merged = torch.clamp(float(r) - rank, 0.0, 1.0)  # (B, Ta): rank < r
        a_slot = (rank - float(r)) + merged * (float(ta - r) + partner - (rank - float(r)))  # kept: rank - r
        slot_k = a_slot @ tab["a_to_k"] + tab["base"]  # (B, T) in energy order
    else:
        slot_k = partner @ tab["a_to_k"] + tab["base"]  # (B, T): A i -> (T - 2r) + partner
    return (slot_k.reshape(b, 1, t) @ order).reshape(b, t)  # back to token order: pos[i] = slot_k[rank i]


@functools.lru_cache(maxsize=256)
def _shift(t: int, p: int) -> tuple[np.ndarray, np.ndarray]:
    """(T, p + T) one-hot [i, p + i] and the slots (p + T,): 0..p-1, then p."""
    move = (np.arange(p + t)[None, :] == np.arange(t)[:, None] + p).astype(np.float32)
    return move, np.minimum(np.arange(p + t), p).astype(np.float32)


def with_protected(pos: torch.Tensor, protected: int) -> torch.Tensor:
    """Prefix `protected` tokens that keep their slots: (B, T) -> (B, protected + T), as a matmul
    with constants (exact; no concatenation of a broadcast constant)."""
    if protected == 0:
        return pos
    move, head = _shift(pos.shape[1], protected)
    return pos @ constant(move, pos) + constant(head, pos)  # (B, p + T)


def layer(fns: LayerFns, state: TokenState, i: int, plan: MergePlan) -> TokenState:
    """Attention, then PiToMe merges r tokens (pitome_bsm in the first layers, pitome later), the MLP."""
    r = plan.r[i]
    x, keys, _ = attend(fns, state, plan.prop_attn)
    if r == 0:
        return state._replace(x=fns.feed_forward(x))
    protected = plan.get("protected")
    with annotate(MERGE_ANNOTATION):
        metric = head_mean(keys)[:, protected:]  # (B, T - p, d)
        pos = pitome_assignment(metric, r, plan.get("margin_per_layer")[i], i < plan.get("bsm_layers"))
        m = one_hot_assignment(with_protected(pos, protected), x.shape[1] - r, x.dtype)  # (B, T', T)
        x, size = merge_wavg(m, x, state.size, state.unit_size)
        source = None if state.source is None else merge_sum(m, state.source)
    return TokenState(fns.feed_forward(x), size, source, state.valid, unit_size=False)


PITOME = register_method(Method(
    name="pitome", summary="PiToMe energy-protected merging (Tran et al. 2024, hchautran/PiToMe), vision encoders",
    grammar=GRAMMAR, parse=parse, plan=plan, layer=layer))
