"""Merge configuration: a frozen dataclass parsed from the CLI's SPEC string at the boundary.

SPEC grammar (what `tomobile export --merge` takes):
    none                          no merging
    tome:r=16                     constant r per layer
    tome:r=16,schedule=decreasing ToMe's decreasing schedule, 2r at the first layer down to 0
    tome:r=4,8,8,16               an explicit per-layer list (missing layers get 0)
    drop:r=16 (any tome schedule) token-drop oracle: keeps the first T' tokens where ToMe would merge
Options after the r value, comma separated as key=value: schedule=constant|decreasing,
prop_attn=0|1 (proportional attention, default 1), trace_source=0|1 (default 0), each at most
once. Numbers are plain decimal digits 0-9 (no '1_0', no signs, no other scripts' digits).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

from .errors import TomobileError


class MergeMethod(str, Enum):
    NONE = "none"
    TOME = "tome"
    # A baseline for measuring, not a method: same plan and shapes as tome, each layer keeps its
    # first T' tokens and discards the rest, so the graph does no merge work at all.
    DROP = "drop"


class Schedule(str, Enum):
    CONSTANT = "constant"
    DECREASING = "decreasing"
    LIST = "list"


class SpecError(TomobileError, ValueError):
    """A merge SPEC that does not parse; the message says what is allowed."""


SPEC_HELP = ("none | tome:r=N[,schedule=constant|decreasing][,prop_attn=0|1][,trace_source=0|1] | tome:r=N1,N2,... | "
             "drop:r=... (same forms; keeps the first T' tokens: a speed baseline for measuring, not a method)")


@dataclass(frozen=True)
class MergeConfig:
    method: MergeMethod = MergeMethod.NONE
    r: tuple[int, ...] = (0,)
    schedule: Schedule = Schedule.CONSTANT
    prop_attn: bool = True
    trace_source: bool = False

    @classmethod
    def parse(cls, spec: str) -> MergeConfig:
        text = spec.strip()
        if text in ("", "none"):
            return cls()
        method, _, body = text.partition(":")
        if method not in (MergeMethod.TOME.value, MergeMethod.DROP.value) or not body:
            raise SpecError(f"unknown merge spec {spec!r}; allowed: {SPEC_HELP}")
        return cls._parse_tome(spec, body, MergeMethod(method))

    @classmethod
    def _parse_tome(cls, spec: str, body: str, method: MergeMethod = MergeMethod.TOME) -> MergeConfig:
        """The r values and options of `tome:` and `drop:` (one grammar for both)."""
        values, options = parse_items(spec, body, first="r", keys=("schedule", "prop_attn", "trace_source"))
        schedule = Schedule.LIST if len(values) > 1 else Schedule.CONSTANT
        if "schedule" in options:
            if len(values) > 1 or options["schedule"] not in ("constant", "decreasing"):
                raise SpecError(f"bad schedule in {spec!r}; allowed: constant or decreasing with one r")
            schedule = Schedule(options["schedule"])
        return cls(
            method=method,
            r=tuple(values),
            schedule=schedule,
            prop_attn=_flag(spec, options.get("prop_attn", "1")),
            trace_source=_flag(spec, options.get("trace_source", "0")),
        )

    @property
    def enabled(self) -> bool:
        return self.method is not MergeMethod.NONE

    @property
    def drops(self) -> bool:
        """The token-drop oracle (`drop:`), not a merge."""
        return self.method is MergeMethod.DROP

    def as_method(self, method: MergeMethod) -> MergeConfig:
        """The same r schedule and options under another method (tome <-> drop)."""
        return replace(self, method=method)

    def per_layer(self, num_layers: int) -> list[int]:
        """r for each of `num_layers` layers (ToMe's `parse_r`)."""
        if not self.enabled:
            return [0] * num_layers
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
        """The SPEC that parses back to this config (options only where not the default)."""
        if not self.enabled:
            return "none"
        if self.schedule is Schedule.LIST:
            text = f"{self.method.value}:r=" + ",".join(str(v) for v in self.r)
        else:
            text = f"{self.method.value}:r={self.r[0]},schedule={self.schedule.value}"
        return text + ("" if self.prop_attn else ",prop_attn=0") + (",trace_source=1" if self.trace_source else "")

    def to_json(self) -> dict:
        return {
            "method": self.method.value,
            "r": list(self.r),
            "schedule": self.schedule.value,
            "prop_attn": self.prop_attn,
            "trace_source": self.trace_source,
        }


def parse_items(spec: str, body: str, first: str, keys: tuple[str, ...]) -> tuple[list[int], dict[str, str]]:
    """'r=4,8,schedule=x' -> ([4, 8], {'schedule': 'x'}) for any method's SPEC body.

    The body starts with `first`=N; more bare integers may follow it (a per-layer list), then
    key=value options from `keys`, each at most once. Integers are plain ASCII decimal digits."""
    values: list[int] = []
    options: dict[str, str] = {}
    for i, item in enumerate(body.split(",")):
        key, eq, val = item.partition("=")
        key, val = key.strip(), val.strip()
        if i == 0:
            if key != first or not eq:
                raise SpecError(f"merge spec {spec!r} must start with {first}=; allowed: {SPEC_HELP}")
            values.append(_int(spec, val))
        elif not eq and not options:
            values.append(_int(spec, key))
        elif eq and key in options:
            raise SpecError(f"{key} is given twice in merge spec {spec!r}; give each option once")
        elif eq and key in keys:
            options[key] = val
        elif eq and key == first:
            raise SpecError(f"{first} is given twice in merge spec {spec!r}; list values as {first}=N1,N2,...")
        else:
            raise SpecError(f"bad item {item!r} in merge spec {spec!r}; allowed: {SPEC_HELP}")
    return values, options


def _int(spec: str, text: str) -> int:
    """A plain decimal integer: ASCII digits only (int() would also take '1_0', '+3' and '٣')."""
    if not (text.isascii() and text.isdigit()):
        if text.startswith("-") and text[1:].isascii() and text[1:].isdigit():
            raise SpecError(f"r value {text} in {spec!r} is negative; r must be >= 0")
        raise SpecError(f"r value {text!r} in {spec!r} is not an integer (digits 0-9 only); allowed: {SPEC_HELP}")
    return int(text)


def _flag(spec: str, text: str) -> bool:
    if text not in ("0", "1"):
        raise SpecError(f"flag value {text!r} in {spec!r} must be 0 or 1")
    return text == "1"
