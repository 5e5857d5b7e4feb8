"""DiffRate (Chen et al., ICCV 2023; OpenGVLab/DiffRate `DiffRate/patch/deit.py`, `merge.py`), static.

The eval path of their `DiffRateBlock`, after attention and before the MLP: sort the non-class
tokens by the head-mean class-token attention of this layer's own softmax (descending), keep the
first `prune` tokens (counts include the class token), then merge the tokens from `merge` on into
the first `merge` by cosine similarity of the hidden states (`get_merge_func`; the class token
receives nothing). Hidden states merge by a plain mean (their scatter_reduce 'mean'), sizes by a
sum after each merged token's size is scaled by its best similarity (`node_max`, not clamped in
eval); attention adds log(size) (proportional attention). The kept counts per layer are constants:
`diffrate:prune=N1,N2,...,merge=M1,M2,...` or the official `compression_rate.json`
(`diffrate:file=PATH,model=ViT-S-DeiT,flops=2.9`).

Static: the class-attention order is a comparison rank (ties by token index; their torch.sort is
unstable), sorted rows and columns are one-hot matmuls (exact), and each token's output slot
(-1 for a pruned token) goes through the same one-hot merge matrix as ToMe's. Every token is
reordered as theirs in a layer that reduces tokens and in the last layer, so `last_hidden_state`
has their order; a layer that reduces nothing keeps its order (the next sort makes it the same).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.fx.traceback import annotate

from ..spec.grammar import SpecError, parse_flag, parse_int
from .constants import PROTECTED, table_tensor
from .layers import MERGE_ANNOTATION, LayerFns, TokenState, attend
from .margins import note_cut, note_partner
from .merge import ARITHMETIC, merge_sum, one_hot_assignment, rank_descending
from .method import Method
from .ops import MergeOps
from .plan import MergePlan, PlanShape, counts_plan

GRAMMAR = ("diffrate:prune=N1,N2,...,merge=M1,M2,...[,prop_attn=0|1][,trace_source=0|1] | "
           "diffrate:file=compression_rate.json,model=NAME,flops=F (kept token counts per layer, class token included)")
_KEYS = ("prune", "merge", "file", "model", "flops", "prop_attn", "trace_source")


@dataclass(frozen=True)
class DiffRateParams:
    prune: tuple[int, ...]  # prune_kept_num per layer
    merge: tuple[int, ...]  # merge_kept_num per layer
    prop_attn: bool = True
    trace_source: bool = False
    origin: str | None = None  # 'file=...,model=...,flops=...' when read from compression_rate.json

    def describe(self) -> str:
        text = self.origin or ("prune=" + ",".join(map(str, self.prune)) + ",merge=" + ",".join(map(str, self.merge)))
        return text + ("" if self.prop_attn else ",prop_attn=0") + (",trace_source=1" if self.trace_source else "")

    def to_json(self) -> dict:
        return {"prune_kept_num": list(self.prune), "merge_kept_num": list(self.merge), "prop_attn": self.prop_attn,
                "trace_source": self.trace_source, **({"source": self.origin} if self.origin else {})}


def _items(spec: str, body: str) -> dict[str, list[str]]:
    """'prune=1,2,merge=3,4,prop_attn=0' -> {'prune': ['1', '2'], 'merge': ['3', '4'], 'prop_attn': ['0']}."""
    items: dict[str, list[str]] = {}
    key = None
    for item in body.split(","):
        name, eq, value = (s.strip() for s in item.partition("="))
        if eq:
            if name not in _KEYS:
                raise SpecError(f"bad item {item!r} in merge spec {spec!r}; allowed: {GRAMMAR}")
            if name in items:
                raise SpecError(f"{name} is given twice in merge spec {spec!r}; give each option once")
            key = name
            items[key] = [value]
        elif key in ("prune", "merge"):
            items[key].append(name)
        else:
            raise SpecError(f"bad item {item!r} in merge spec {spec!r}; allowed: {GRAMMAR}")
    return items


def read_compression_rate(path: Path, model: str, flops: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(prune, merge) kept counts from the official compression_rate.json ({model: {flops: {
    'prune_kept_num': '[197,...]', 'merge_kept_num': '[...]'}}}). Every level must be that shape
    and every count a JSON integer: 65.5, 1e400 (infinite) and NaN are refused, never recorded."""
    if not path.is_file():
        raise SpecError(f"diffrate: no file {path}; give the official compression_rate.json")
    try:
        table = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise SpecError(f"diffrate: {path} is not JSON ({err})") from None
    if not isinstance(table, dict):
        raise SpecError(f"diffrate: {path} holds a JSON {type(table).__name__}; the file maps model names to "
                        "{flops: {prune_kept_num, merge_kept_num}}")
    if model not in table:
        raise SpecError(f"diffrate: {path} has no model {model!r}; models: {', '.join(table)}")
    if not isinstance(table[model], dict):
        raise SpecError(f"diffrate: {model} in {path} is a JSON {type(table[model]).__name__}, not a map of flops")
    if flops not in table[model]:
        raise SpecError(f"diffrate: {model} in {path} has no flops {flops!r}; flops: {', '.join(table[model])}")
    entry = table[model][flops]
    return tuple(_counts(entry, "prune_kept_num", f"{model}/{flops} in {path}")), \
        tuple(_counts(entry, "merge_kept_num", f"{model}/{flops} in {path}"))


def _counts(entry: object, key: str, where: str) -> list[int]:
    """entry[key]: a JSON list of integers written as a string, as the official file has it."""
    try:
        values = json.loads(entry[key])  # type: ignore[index]
    except (KeyError, TypeError, IndexError, json.JSONDecodeError, RecursionError):
        raise SpecError(f"diffrate: {where} lacks a {key} list") from None
    if not isinstance(values, list) or not all(type(v) is int for v in values):
        bad = values if not isinstance(values, list) else next(v for v in values if type(v) is not int)
        raise SpecError(f"diffrate: {key} of {where} holds {json.dumps(bad)[:40]}; kept counts are "
                        "integers (digits only, no fraction or exponent)")
    return values


def parse(spec: str, body: str) -> DiffRateParams:
    items = _items(spec, body)
    flags = {k: parse_flag(spec, items[k][0]) for k in ("prop_attn", "trace_source") if k in items}
    if "file" in items:
        if {"prune", "merge"} & set(items) or not {"model", "flops"} <= set(items):
            raise SpecError(f"diffrate: file= needs model= and flops= and no prune=/merge= lists ({spec!r})")
        origin = f"file={items['file'][0]},model={items['model'][0]},flops={items['flops'][0]}"
        prune, merge = read_compression_rate(Path(items["file"][0]), items["model"][0], items["flops"][0])
        return DiffRateParams(prune, merge, origin=origin, **flags)
    if not {"prune", "merge"} <= set(items) or {"model", "flops"} & set(items):
        raise SpecError(f"diffrate: give prune=... and merge=... lists, or file=,model=,flops= ({spec!r})")
    prune = tuple(parse_int(spec, v) for v in items["prune"])
    merge = tuple(parse_int(spec, v) for v in items["merge"])
    return DiffRateParams(prune, merge, **flags)


def plan(params: DiffRateParams, shape: PlanShape) -> MergePlan:
    """Tokens after each layer: min(T, prune, merge), as their eval path slices and merges."""
    if not shape.protected.class_token or shape.padded:
        raise SpecError("diffrate: ranks tokens by class-token attention: it needs a vision encoder with a class token")
    layers, protected = shape.num_layers, shape.protected.count
    if len(params.prune) != layers or len(params.merge) != layers:
        raise SpecError(f"diffrate: {len(params.prune)} prune and {len(params.merge)} merge counts given for a "
                        f"model with {layers} layers; give one of each per layer")
    removed, tokens = [], shape.tokens
    for layer, (p, m) in enumerate(zip(params.prune, params.merge)):
        if min(p, m) <= protected:
            raise SpecError(f"diffrate: layer {layer} keeps {min(p, m)} tokens; it must keep more than the "
                            f"{protected} protected ones")
        kept = min(tokens, p, m)
        removed.append(tokens - kept)
        tokens = kept
    return counts_plan("diffrate", removed, shape, params.prop_attn, params.trace_source,
                       data=(("prune_kept_num", params.prune), ("merge_kept_num", params.merge)))


@functools.lru_cache(maxsize=256)
def _tables(t: int, mid: int, kept: int, p: int) -> dict[str, np.ndarray]:
    """Constants over the sorted order k (T): the rows of the merged tokens (mid - kept, T) and of the
    destinations (kept, T), a copy of the first for the one matmul that takes it as a weight
    (`spread`), the fixed slots (k for a destination, -1 for a pruned token), a
    source row's spot in the slot vector, and the protected destination columns."""
    k = np.arange(t)
    src = (np.arange(kept, mid)[:, None] == k[None, :]).astype(np.float32)
    dst = (np.arange(kept)[:, None] == k[None, :]).astype(np.float32)
    base = np.where(k < kept, k, np.where(k < mid, 0, -1)).astype(np.float32)
    free = (np.arange(kept) >= p).astype(np.float32)
    shift = (k[:, None] == np.arange(t - p)[None, :] + p).astype(np.float32)  # (T, T - p): [p + j, j] = 1
    head = np.diag((k < p).astype(np.float32))  # (T, T): protected tokens stay first
    return {"src": src, "spread": src.copy(), "dst": dst, "base": base, "free": free, "shift": shift, "head": head}


def diffrate_step(x: torch.Tensor, probs: torch.Tensor, mid: int, kept: int, p: int,
                  ops: MergeOps = ARITHMETIC) -> tuple[torch.Tensor, torch.Tensor]:
    """Output slot (B, T) of every token (-1: pruned) and the size factor (B, T, 1): node_max for a
    merged token, 1 otherwise. x (B, T, C) are the hidden states after the attention residual."""
    b, t, _ = x.shape
    tab = {k: table_tensor(v, x) for k, v in _tables(t, mid, kept, p).items()}
    attn = ops.class_attention(probs, p)  # (B, T - p): head-mean attention of the class token
    note_cut("diffrate.prune", attn, mid - p)  # eager only, inside margins.record_margins(): which tokens
    note_cut("diffrate.merge", attn, kept - p)  # are pruned, merged, kept (their order only permutes slots)
    rank = rank_descending(attn, ops)  # (B, T - p)
    ranked = one_hot_assignment(rank, t - p, x.dtype, ops)  # (B, T - p, T - p)
    order = tab["shift"] @ ranked @ tab["shift"].transpose(0, 1) + tab["head"]  # (B, T, T): P[k, i], exact
    if mid == kept:  # prune only
        return (tab["base"].reshape(1, 1, t) @ order).reshape(b, t), x[:, :, :1] * 0.0 + 1.0
    unit = x / ops.norm(x)  # (B, T, C), as theirs: no eps
    src, dst = tab["src"] @ order @ unit, tab["dst"] @ order @ unit  # (B, S, C), (B, K, C)
    scores = src @ dst.transpose(-1, -2)  # (B, S, K)
    scores = scores * tab["free"] + PROTECTED * (1.0 - tab["free"])  # the class token receives nothing
    best, partner = ops.best_partner(scores)  # (B, S)
    note_partner("diffrate", scores, torch.ones_like(best))  # every source merges
    # One matmul for both rows, on a constant of its own: XNNPACK packs a 2-D matmul's constant operand
    # as a weight, and a weight that another op also reads puts that matmul in a partition of its own.
    spread = torch.stack((partner, best - 1.0), dim=1) @ tab["spread"]  # (B, 2, T) over sorted k
    slot_k = tab["base"] + spread[:, 0]  # (B, T)
    scale_k = 1.0 + spread[:, 1]  # (B, T): node_max for merged rows, 1 elsewhere
    pos = (slot_k.reshape(b, 1, t) @ order).reshape(b, t)  # token order
    return pos, (scale_k.reshape(b, 1, t) @ order).reshape(b, t, 1)


def layer(fns: LayerFns, state: TokenState, i: int, plan: MergePlan, ops: MergeOps) -> TokenState:
    """Attention, then sort by class attention, prune, merge (DiffRate's eval path), then the MLP."""
    r, last = plan.r[i], i == len(plan.r) - 1
    x, _, probs = attend(fns, state, plan.prop_attn)
    if r == 0 and not last:
        return state._replace(x=fns.feed_forward(x))
    t, p = x.shape[1], plan.protected.count
    mid = min(t, plan.get("prune_kept_num")[i])
    with annotate(MERGE_ANNOTATION):
        pos, scale = diffrate_step(x, probs, mid, t - r, p, ops)
        m = one_hot_assignment(pos, t - r, x.dtype, ops)  # (B, T', T), pruned tokens in no slot
        count = m @ table_tensor(np.ones((t, 1), np.float32), x)  # (B, T', 1)
        x = (m @ x) / count  # plain mean, as their scatter_reduce 'mean' in eval
        size = m @ (state.size * scale)  # (B, T', 1)
        source = None if state.source is None else merge_sum(m, state.source)
    return TokenState(fns.feed_forward(x), size, source, state.valid, unit_size=False)


DIFFRATE = Method(
    name="diffrate", summary="DiffRate prune-then-merge at fixed kept counts (Chen et al. 2023, OpenGVLab/DiffRate)",
    grammar=GRAMMAR, parse=parse, plan=plan, layer=layer)
