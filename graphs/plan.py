"""The merge plan: r and token count per layer, fixed once when a model is patched.

The plan is what makes the merged graph static: every layer's input and output token count is a
Python int known before tracing, and r is checked against each layer's limit here, so a bad
schedule fails at patch time with a clear message instead of inside an exported graph.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import MergeConfig, Schedule, SpecError
from .merge import max_r


@dataclass(frozen=True)
class MergePlan:
    r: tuple[int, ...]  # per layer
    tokens: tuple[int, ...]  # tokens entering each layer, then the count leaving the last one
    class_token: bool
    distill_token: bool
    prop_attn: bool
    trace_source: bool
    drop: bool = False  # the token-drop oracle: keep the first T' tokens, no merge work

    @property
    def merges(self) -> bool:
        return any(self.r)

    @property
    def first_merge(self) -> int:
        """Index of the first layer that merges (len(r) when none does)."""
        return next((i for i, r in enumerate(self.r) if r > 0), len(self.r))

    def to_json(self) -> dict:
        return {
            "r_per_layer": list(self.r),
            "tokens_per_layer": list(self.tokens),
            "class_token": self.class_token,
            "distill_token": self.distill_token,
            "method": "drop" if self.drop else "tome",
        }


def make_plan(
    config: MergeConfig, num_layers: int, tokens: int, class_token: bool, distill_token: bool = False
) -> MergePlan:
    """Token counts per layer for `config`.

    As in ToMe, a constant or decreasing schedule takes at most what each layer allows (ViT-B/16
    at r=16 merges 16 per layer until the last layers run short of tokens). An explicit per-layer
    list is taken literally, and any r beyond what the first layer allows is an error: both raise
    SpecError rather than silently merging less than asked.
    """
    schedule = config.per_layer(num_layers)
    explicit = config.schedule is Schedule.LIST
    counts = [tokens]
    for layer, r in enumerate(schedule):
        limit = max_r(counts[-1], class_token, distill_token)
        if r > limit and not explicit and layer > 0:
            r = schedule[layer] = limit
        if r > limit:
            raise SpecError(
                f"r={r} at layer {layer} is too large: that layer has {counts[-1]} tokens and allows r <= {limit}"
            )
        counts.append(counts[-1] - r)
    return MergePlan(
        r=tuple(schedule),
        tokens=tuple(counts),
        class_token=class_token,
        distill_token=distill_token,
        prop_attn=config.prop_attn,
        trace_source=config.trace_source,
        drop=config.drops,
    )
