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

from ..errors import InputError


@dataclass(frozen=True)
class Protected:
    """The leading tokens that never merge: the class token, then a distillation token (DeiT) or
    register tokens (DINOv2 with registers), counted here and nowhere else. They alternate A0, B0,
    A1, B1, .. in ToMe's A/B split (`split`) and keep their order at the front of the output."""

    class_token: bool = False
    distill_token: bool = False
    registers: int = 0

    def __post_init__(self) -> None:
        if (self.distill_token or self.registers) and not self.class_token:
            raise InputError("a distillation token or register tokens need a class token in front of them")
        if self.registers < 0:
            raise InputError(f"registers={self.registers}: a count of register tokens, 0 or more")

    @property
    def count(self) -> int:
        return int(self.class_token) + int(self.distill_token) + self.registers

    @property
    def split(self) -> tuple[int, int]:
        """Protected A rows and B columns: the first `count` tokens alternate A0, B0, A1, B1, ..."""
        return (self.count + 1) // 2, self.count // 2


NOTHING_PROTECTED = Protected()


@dataclass(frozen=True)
class PlanShape:
    """What a planner knows about the model: layers, tokens entering the first, protected tokens."""

    num_layers: int
    tokens: int
    protected: Protected
    padded: bool = False  # a text encoder: tokens carry a padding mask


@dataclass(frozen=True)
class MergePlan:
    r: tuple[int, ...]  # tokens each layer removes
    tokens: tuple[int, ...]  # tokens entering each layer, then the count leaving the last one
    protected: Protected
    prop_attn: bool
    trace_source: bool
    method: str = "tome"
    data: tuple[tuple[str, Any], ...] = ()  # method data: (key, value) pairs, values JSON-able

    @property
    def class_token(self) -> bool:
        return self.protected.class_token

    @property
    def distill_token(self) -> bool:
        return self.protected.distill_token

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
        """A method data entry, or a protected count as the manifest records it for every method
        ("protected"; "registers" where there are any); KeyError otherwise."""
        return {**self._protected_fields(), **dict(self.data)}[key]

    def _protected_fields(self) -> dict[str, int]:
        registers = self.protected.registers
        return {**({"registers": registers} if registers else {}), "protected": self.protected.count}

    def to_json(self) -> dict:
        return {
            "r_per_layer": list(self.r),
            "tokens_per_layer": list(self.tokens),
            "class_token": self.class_token,
            "distill_token": self.distill_token,
            **self._protected_fields(),
            "method": self.method,
            **{k: list(v) if isinstance(v, tuple) else v for k, v in self.data},
        }


def counts_plan(method: str, removed: list[int], shape: PlanShape, prop_attn: bool, trace_source: bool = False,
                data: tuple[tuple[str, Any], ...] = ()) -> MergePlan:
    """A plan from the tokens each layer removes (the planners' common tail)."""
    counts = [shape.tokens]
    for r in removed:
        counts.append(counts[-1] - r)
    return MergePlan(tuple(removed), tuple(counts), shape.protected, prop_attn, trace_source, method, data)

