"""One parser for the numbers a user types: counts, count lists, sizes, percentages, floats.

The rule is the merge specs' rule (graphs/spec/config.py): ASCII digits only, so `int()`'s and
`float()`'s extras are refused ('1_000', '+3', full-width '２', Arabic-Indic digits, '1e3' in a
size, 'inf', 'nan'); only ASCII whitespace around a number is ignored (not a no-break space); a
list has no empty items and no value twice; every value has bounds, and a float must fit the dtype
it is used in (float32 for the samplers' scalars). Each failure is a NumberError with one line that
says what was wrong and what is allowed. tomobile-native parses counts and sizes by the same rules
(runtime/native/src/numbers.cpp); tests/number_cases.json holds the cases both are tested on.
"""

from __future__ import annotations

import re
from fractions import Fraction

import numpy as np

from .errors import InputError


class NumberError(InputError):
    """A number the user typed that is malformed or out of range: one line for the CLI, exit code 2."""


# Decimal units (powers of 1000) and binary ones (of 1024), case-insensitive; a bare number is bytes.
SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "pb": 10**15,
              "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
MAX_BYTES = 10**15  # 1 PB: above any device's memory; keeps every size a finite int64
SPACE = " \t\n\r\f\v"  # ASCII whitespace: all that is stripped around a number (not U+00A0, U+3000)
MAX_PERCENT = 1000
INT_DIGITS = re.compile(r"[0-9]+")  # the one spelling of an integer
_DECIMAL = re.compile(r"([0-9]+(?:\.[0-9]+)?|\.[0-9]+)")
# re.ASCII: without it IGNORECASE lets the Kelvin sign (U+212A) match [a-z] as a 'k'.
_SIZE = re.compile(r"([0-9]+(?:\.[0-9]+)?|\.[0-9]+) ?([a-z]*)", re.IGNORECASE | re.ASCII)
_FLOAT = re.compile(r"[+-]?([0-9]+(?:\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
_FLOAT_DTYPES = {"float32": np.float32, "float16": np.float16, "float64": np.float64}


def parse_int(text: str, what: str, low: int = 0, high: int | None = None) -> int:
    """A plain decimal integer in [low, high]: ASCII digits only (a leading '-' only to say it is negative)."""
    stripped = text.strip(SPACE)
    body = stripped.removeprefix("-")
    if not INT_DIGITS.fullmatch(body) or (body != stripped and not body.strip("0")):  # '-0' says no negative
        raise NumberError(f"{what} {text!r} is not an integer (digits 0-9 only){_range(low, high)}")
    value = int(stripped)
    if value < low or (high is not None and value > high):
        raise NumberError(f"{what} {value if len(stripped) <= 30 else stripped[:20] + '...'} is out of range; "
                          f"give an integer{_range(low, high)}")
    return value


def parse_int_list(text: str, what: str, low: int = 0, high: int | None = None) -> list[int]:
    """'1,2,4' -> [1, 2, 4]: one or more comma-separated integers, no empty item, no value twice."""
    items = [item.strip(SPACE) for item in text.split(",")]
    if not any(items):
        raise NumberError(f"{what} is empty; give one or more comma-separated integers{_range(low, high)}")
    if not all(items):
        raise NumberError(f"{what} {text!r} has an empty item; give comma-separated integers like 1,2,4")
    values = [parse_int(item, what, low, high) for item in items]
    twice = [v for i, v in enumerate(values) if v in values[:i]]
    if twice:
        raise NumberError(f"{what} {text!r} lists {twice[0]} twice; give each value once")
    return values


def parse_names(text: str, what: str, allowed: list[str] | tuple[str, ...], kind: str = "names") -> list[str]:
    """'onnx,executorch' -> ['onnx', 'executorch']: names from `allowed`, comma-separated, by the
    list rule of the numbers (no empty item, no name twice)."""
    items = [item.strip(SPACE) for item in text.split(",")]
    choices = ", ".join(allowed)
    if not any(items):
        raise NumberError(f"{what} is empty; give one or more comma-separated {kind} from: {choices}")
    if not all(items):
        raise NumberError(f"{what} {text!r} has an empty item; give comma-separated {kind} from: {choices}")
    unknown = [item for item in items if item not in allowed]
    if unknown:
        raise NumberError(f"{what}: unknown {kind.rstrip('s')} {unknown[0]!r}; {kind}: {choices}")
    twice = [item for i, item in enumerate(items) if item in items[:i]]
    if twice:
        raise NumberError(f"{what} {text!r} lists {twice[0]} twice; give each once")
    return items


MAX_PIXELS = 16384  # a side of an image or video frame, in pixels


def parse_pixel_size(text: str, what: str = "--size") -> tuple[int, int]:
    """'480x832' -> (480, 832), height x width in pixels; one number is a square ('256' -> (256, 256))."""
    parts = text.strip().lower().split("x")
    if len(parts) > 2:
        raise NumberError(f"{what} {text!r} is not HxW or one number, e.g. 256x256 or 256")
    sides = [parse_int(p, what, 1, MAX_PIXELS) for p in parts]
    return sides[0], sides[-1]


def parse_size(text: str, what: str = "size", low: int = 1) -> int:
    """'64MB' -> 64_000_000: a decimal number (no exponent) and a unit from B, KB, MB, GB, TB, PB
    (powers of 1000), KiB, MiB, GiB, TiB (of 1024); a bare number is bytes. floor(number x unit),
    exactly; at least `low` bytes, at most 1 PB."""
    match = _SIZE.fullmatch(text.strip(SPACE))
    if match is None or match.group(2).lower() not in SIZE_UNITS:
        raise NumberError(f"{what} {text!r} is not a size; give digits 0-9 and a unit, e.g. 64MB, 1.5GB, 512MiB "
                          "or a byte count")
    value = int(Fraction(match.group(1)) * SIZE_UNITS[match.group(2).lower()])
    if not low <= value <= MAX_BYTES:
        raise NumberError(f"{what} {text!r} is out of range; give {low} B to 1 PB (1000 TB)")
    return value


def parse_percent(text: str, what: str = "percentage") -> Fraction:
    """'25%' -> Fraction(1, 4): a decimal number above 0 and at most 1000, then '%'."""
    body = text.strip(SPACE)
    if not body.endswith("%") or _DECIMAL.fullmatch(body[:-1]) is None:
        raise NumberError(f"{what} {text!r} is not a percentage; give digits 0-9 and %, e.g. 25%")
    share = Fraction(body[:-1])
    if not 0 < share <= MAX_PERCENT:
        raise NumberError(f"{what} {text!r} is out of range; give above 0% and at most {MAX_PERCENT}%")
    return share / 100


def parse_float(text: str, what: str, dtype: str = "float32") -> float:
    """A decimal number (exponent allowed: 1e-3) that is finite in `dtype`, the type it is used in:
    nan, inf and 1e308 for a float32 are refused."""
    stripped = text.strip(SPACE)
    if _FLOAT.fullmatch(stripped) is None:
        raise NumberError(f"{what} {text!r} is not a decimal number (digits 0-9, e.g. 4 or 7.5 or 1e-3)")
    value = float(stripped)
    info = np.finfo(_FLOAT_DTYPES[dtype])
    if not abs(value) <= float(info.max):
        raise NumberError(f"{what} {text!r} does not fit a {dtype}; give a number within +-{float(info.max):.4g}")
    return value


def _range(low: int, high: int | None) -> str:
    return f" >= {low}" if high is None else f" from {low} to {high}"
