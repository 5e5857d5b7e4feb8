"""The merge plan: tokens per layer, fixed once when a model is patched, for any merge method.

The plan is what makes the merged graph static: every layer's input and output token count is a
Python int known before tracing, checked against each layer's limit by the method's planner
(each method's `plan`; registry.make_plan picks it), so a bad schedule fails at patch time with a clear message instead of
inside an exported graph. `data` holds what a method needs per layer besides the counts
(PiToMe's margins, DiffRate's kept counts); it goes into the manifest as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PlanShape:
    """What a planner knows about the model: layers, tokens entering the first, protected tokens."""

    num_layers: int
    tokens: int
    class_token: bool
    distill_token: bool = False
    padded: bool = False  # a text encoder: tokens carry a padding mask
    registers: int = 0  # register tokens after the class token (DINOv2 with registers), protected

    @property
    def protected(self) -> int:
        """Tokens at the front that never merge: class, distillation and register tokens."""
        return int(self.class_token) + int(self.distill_token) + self.registers


@dataclass(frozen=True)
class MergePlan:
    r: tuple[int, ...]  # tokens each layer removes
    tokens: tuple[int, ...]  # tokens entering each layer, then the count leaving the last one
    class_token: bool
    distill_token: bool
    prop_attn: bool
    trace_source: bool
    method: str = "tome"
    data: tuple[tuple[str, Any], ...] = ()  # method data: (key, value) pairs, values JSON-able

    @property
    def drop(self) -> bool:
        """The token-drop oracle: keep the first T' tokens, no merge work."""
        return self.method == "drop"

    @property
    def merges(self) -> bool:
        return any(self.r)

    @property
    def first_merge(self) -> int:
        """Index of the first layer that merges (len(r) when none does)."""
        return next((i for i, r in enumerate(self.r) if r > 0), len(self.r))

    def get(self, key: str) -> Any:
        """A method data entry (KeyError when the method wrote none)."""
        return dict(self.data)[key]

    def to_json(self) -> dict:
        return {
            "r_per_layer": list(self.r),
            "tokens_per_layer": list(self.tokens),
            "class_token": self.class_token,
            "distill_token": self.distill_token,
            "method": self.method,
            **{k: list(v) if isinstance(v, tuple) else v for k, v in self.data},
        }


def counts_plan(method: str, removed: list[int], shape: PlanShape, prop_attn: bool, trace_source: bool = False,
                data: tuple[tuple[str, Any], ...] = ()) -> MergePlan:
    """A plan from the tokens each layer removes (the planners' common tail)."""
    counts = [shape.tokens]
    for r in removed:
        counts.append(counts[-1] - r)
    return MergePlan(tuple(removed), tuple(counts), shape.class_token, shape.distill_token, prop_attn, trace_source,
                     method, data)

