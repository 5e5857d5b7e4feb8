"""ToMe (Bolya et al., ICLR 2023; facebookresearch/ToMe) as a merge method.

SPEC: `tome:r=16`, `tome:r=16,schedule=decreasing`, `tome:r=4,8,8,16` (per layer, missing layers
get 0), options prop_attn=0|1 (default 1) and trace_source=0|1 (default 0). The static ops are in
merge.py (ARITHMETIC) and merge_indexed.py (INDEXED, ONNX Runtime); this module holds the SPEC,
the schedule (ToMe's `parse_r`) and the layer step: attention, r tokens merged by bipartite soft
matching on the head-mean keys, the MLP.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from torch.fx.traceback import annotate

from ..spec.grammar import SpecError, parse_flag, parse_items
from .layers import MERGE_ANNOTATION, LayerFns, TokenState, attend
from .merge import max_r, merge_sum, merge_wavg
from .method import Method
from .ops import MergeOps
from .plan import MergePlan, PlanShape, counts_plan

GRAMMAR = "tome:r=N[,schedule=constant|decreasing][,prop_attn=0|1][,trace_source=0|1] | tome:r=N1,N2,..."


class Schedule(str, Enum):
    CONSTANT = "constant"
    DECREASING = "decreasing"
    LIST = "list"


@dataclass(frozen=True)
class TomeParams:
    """r per layer as a schedule; `drop:` parses the same (drop.py)."""

    r: tuple[int, ...] = (0,)
    schedule: Schedule = Schedule.CONSTANT
    prop_attn: bool = True
    trace_source: bool = False

    def per_layer(self, num_layers: int) -> list[int]:
        """r for each of `num_layers` layers (ToMe's `parse_r`)."""
        if self.schedule is Schedule.LIST:
            if len(self.r) > num_layers:
                raise SpecError(f"{len(self.r)} r values given for a model with {num_layers} layers")
            return list(self.r) + [0] * (num_layers - len(self.r))
        r = self.r[0]
        if self.schedule is Schedule.CONSTANT or num_layers == 1:
            return [r] * num_layers
        # Decreasing: linear from 2r at the first layer to 0 at the last (ToMe's inflect = -1).
        step = -2 * r / (num_layers - 1)
        return [int(2 * r + step * i) for i in range(num_layers)]

    def describe(self) -> str:
        """The SPEC body that parses back to these params (options only where not the default)."""
        if self.schedule is Schedule.LIST:
            text = "r=" + ",".join(str(v) for v in self.r)
        else:
            text = f"r={self.r[0]},schedule={self.schedule.value}"
        return text + ("" if self.prop_attn else ",prop_attn=0") + (",trace_source=1" if self.trace_source else "")

    def to_json(self) -> dict:
        return {"r": list(self.r), "schedule": self.schedule.value, "prop_attn": self.prop_attn,
                "trace_source": self.trace_source}


def parse(spec: str, body: str) -> TomeParams:
    """The r values and options of `tome:` (and `drop:`)."""
    values, options = parse_items(spec, body, first="r", keys=("schedule", "prop_attn", "trace_source"))
    schedule = Schedule.LIST if len(values) > 1 else Schedule.CONSTANT
    if "schedule" in options:
        if len(values) > 1 or options["schedule"] not in ("constant", "decreasing"):
            raise SpecError(f"bad schedule in {spec!r}; allowed: constant or decreasing with one r")
        schedule = Schedule(options["schedule"])
    return TomeParams(r=tuple(values), schedule=schedule, prop_attn=parse_flag(spec, options.get("prop_attn", "1")),
                      trace_source=parse_flag(spec, options.get("trace_source", "0")))


def plan(params: TomeParams, shape: PlanShape) -> MergePlan:
    """Token counts per layer.

    As in ToMe, a constant or decreasing schedule takes at most what each layer allows (ViT-B/16
    at r=16 merges 16 per layer until the last layers run short of tokens). An explicit per-layer
    list is taken literally, and any r beyond what the first layer allows is an error: both raise
    SpecError rather than silently merging less than asked.
    """
    schedule = params.per_layer(shape.num_layers)
    explicit = params.schedule is Schedule.LIST
    tokens = shape.tokens
    for layer, r in enumerate(schedule):
        limit = max_r(tokens, shape.protected)
        if r > limit and not explicit and layer > 0:
            r = schedule[layer] = limit
        if r > limit:
            raise SpecError(f"r={r} at layer {layer} is too large: that layer has {tokens} tokens and allows r <= {limit}")
        tokens -= r
    # Register tokens (DINOv2 with registers) are protected like the class token (shape.protected); ToMe has none.
    return counts_plan("tome", schedule, shape, params.prop_attn, params.trace_source)


def layer(fns: LayerFns, state: TokenState, i: int, plan: MergePlan, ops: MergeOps) -> TokenState:
    """Attention, then merge r tokens (bipartite soft matching, spelled by `ops`), then the MLP."""
    r = plan.r[i]
    x, keys, _ = attend(fns, state, plan.prop_attn)
    size, source, valid = state.size, state.source, state.valid
    if r == 0:
        return TokenState(fns.feed_forward(x), size, source, valid, state.unit_size)
    with annotate(MERGE_ANNOTATION):
        metric = ops.head_mean(keys)  # (B, T, d)
        m = ops.match(metric, r, plan.protected, valid)  # (B, T', T) or indices
        x, size = merge_wavg(m, x, size, state.unit_size)
        if source is not None:
            source = merge_sum(m, source)
        if valid is not None:  # reshapes, not (un)squeeze: XNNPACK delegates views, not squeeze_copy (4 partitions)
            b, t = valid.shape
            valid = merge_sum(m, valid.reshape(b, t, 1)).reshape(b, t - r).clamp(max=1.0)  # (B, T')
    return TokenState(fns.feed_forward(x), size, source, valid, unit_size=False)


TOME = Method(
    name="tome", summary="ToMe bipartite soft matching (Bolya et al. 2023, facebookresearch/ToMe)",
    grammar=GRAMMAR, parse=parse, plan=plan, layer=layer)
