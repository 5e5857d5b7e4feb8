"""The pieces every merge method's SPEC parser shares: SpecError and the item grammar.

A SPEC is `METHOD:BODY`; BODY starts with `first=V` (more bare values may follow it: a per-layer
list), then `key=value` options, each at most once. Values are parsed by the caller's `value`
function: plain ASCII decimal integers (`parse_int`, the digits rule of graphs/numbers.py) or
plain decimals in [0, 1] (`parse_fraction`); flags are 0 or 1.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from ..errors import TomobileError
from ..numbers import INT_DIGITS

V = TypeVar("V")


class SpecError(TomobileError, ValueError):
    """A merge SPEC that does not parse; the message says what is allowed. `list_forms`: the
    SPEC parser appends every method's forms to the message (config.parse_spec), so this module,
    which every method imports, need not import the method table."""

    def __init__(self, message: str, list_forms: bool = False) -> None:
        super().__init__(message)
        self.list_forms = list_forms


def parse_int(spec: str, text: str) -> int:
    """A plain decimal integer: ASCII digits only (int() would also take '1_0', '+3' and '٣')."""
    if not INT_DIGITS.fullmatch(text):
        if text.startswith("-") and INT_DIGITS.fullmatch(text[1:]):
            raise SpecError(f"r value {text} in {spec!r} is negative; r must be >= 0")
        raise SpecError(f"r value {text!r} in {spec!r} is not an integer (digits 0-9 only)", list_forms=True)
    return int(text)


def parse_fraction(spec: str, text: str, what: str = "ratio") -> float:
    """A plain decimal in [0, 1]: digits with at most one '.', no sign, exponent or underscore."""
    digits = text.replace(".", "", 1)
    if not INT_DIGITS.fullmatch(digits):
        raise SpecError(f"{what} value {text!r} in {spec!r} is not a plain decimal like 0.9")
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise SpecError(f"{what} value {text} in {spec!r} is out of range; allowed 0..1")
    return value


def parse_flag(spec: str, text: str) -> bool:
    if text not in ("0", "1"):
        raise SpecError(f"flag value {text!r} in {spec!r} must be 0 or 1")
    return text == "1"


def parse_items(spec: str, body: str, first: str, keys: tuple[str, ...],
                value: Callable[[str, str], V] = parse_int) -> tuple[list[V], dict[str, str]]:
    """'r=4,8,schedule=x' -> ([4, 8], {'schedule': 'x'}) for any method's SPEC body."""
    values: list[V] = []
    options: dict[str, str] = {}
    for i, item in enumerate(body.split(",")):
        key, eq, val = item.partition("=")
        key, val = key.strip(), val.strip()
        if i == 0:
            if key != first or not eq:
                raise SpecError(f"merge spec {spec!r} must start with {first}=", list_forms=True)
            values.append(value(spec, val))
        elif not eq and not options:
            values.append(value(spec, key))
        elif eq and key in options:
            raise SpecError(f"{key} is given twice in merge spec {spec!r}; give each option once")
        elif eq and key in keys:
            options[key] = val
        elif eq and key == first:
            raise SpecError(f"{first} is given twice in merge spec {spec!r}; list values as {first}=N1,N2,...")
        else:
            raise SpecError(f"bad item {item!r} in merge spec {spec!r}", list_forms=True)
    return values, options


def parse_options(spec: str, body: str, keys: tuple[str, ...]) -> dict[str, str]:
    """'a=1,b=x' -> {'a': '1', 'b': 'x'}: options only, each from `keys` and at most once."""
    options: dict[str, str] = {}
    for item in body.split(","):
        key, eq, val = item.partition("=")
        key, val = key.strip(), val.strip()
        if not eq or key not in keys:
            raise SpecError(f"bad item {item!r} in merge spec {spec!r}", list_forms=True)
        if key in options:
            raise SpecError(f"{key} is given twice in merge spec {spec!r}; give each option once")
        options[key] = val
    return options
