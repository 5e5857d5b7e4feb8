"""graphs/numbers.py: one parser for counts, lists, sizes, percentages and floats (issue 18, items
2, 7 and 12), with generated spellings: every accepted text is plain ASCII digits, and every value
is finite and fits its bounds."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tomobile.graphs.numbers import (
    MAX_BYTES,
    NumberError,
    parse_float,
    parse_int,
    parse_int_list,
    parse_percent,
    parse_size,
)

BAD_INTS = ["\uff12", "\u0661\u0660", "1_0", "+3", "1e3", "", " ", "0x10", "1.0", "٣"]
BAD_LISTS = ["1,,2", "1,1", "1,2,1", ",", "", "1,", ",1", "\uff12,3", "1_0,2"]
BAD_SIZES = ["inf", "1e400", "infMB", "nan", "nanMB", "1e3MB", "1_000MB", "\uff12MB", "-1MB", "0", "0MB", "12XB",
             "MB", "1.MB", "1,5MB", "2000TB", "9" * 400 + "MB"]
BAD_PERCENTS = ["inf%", "nan%", "0%", "-5%", "1e2%", "\uff15\uff10%", "1_0%", "1001%", "%", "50"]
BAD_FLOATS = ["nan", "inf", "-inf", "1e308", "1e39", "-3.5e38", "\uff14", "1_0", "0x1p3", "", "4,5", "infinity"]


def test_plain_values():
    assert parse_int("12", "n") == 12 and parse_int_list("1,2,4", "n") == [1, 2, 4]
    assert parse_size("64MB") == 64_000_000 and parse_size("1.5GiB") == 3 * 2**29 and parse_size("4096") == 4096
    assert parse_size("64 mb") == 64_000_000 and parse_percent("12.5%") == 0.125
    assert parse_float("4", "g") == 4.0 and parse_float("-1e-3", "g") == -0.001 and parse_float("3e38", "g") == 3e38


@pytest.mark.parametrize("text", BAD_INTS)
def test_bad_ints(text):
    with pytest.raises(NumberError, match="not an integer"):
        parse_int(text, "n")


def test_int_bounds_say_the_range():
    with pytest.raises(NumberError, match="from 1 to 8"):
        parse_int("9", "--threads", 1, 8)
    with pytest.raises(NumberError, match=">= 1"):
        parse_int("-2", "n", 1)


@pytest.mark.parametrize("text", BAD_LISTS)
def test_bad_lists(text):
    with pytest.raises(NumberError):
        parse_int_list(text, "n")


@pytest.mark.parametrize("text", BAD_SIZES)
def test_bad_sizes(text):
    with pytest.raises(NumberError, match="not a size|out of range"):
        parse_size(text)


@pytest.mark.parametrize("text", BAD_PERCENTS)
def test_bad_percents(text):
    with pytest.raises(NumberError):
        parse_percent(text)


@pytest.mark.parametrize("text", BAD_FLOATS)
def test_bad_floats(text):
    with pytest.raises(NumberError):
        parse_float(text, "--guidance")


_DIGITS = re.compile(r"[0-9]+")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("0123456789_+-.,eE \uff10\uff11\u0661\u0966xX"), max_size=8))
def test_generated_ints_accept_only_ascii_digits(text):
    try:
        value = parse_int(text, "n")
    except NumberError:
        assert not _DIGITS.fullmatch(text.strip()), text
    else:
        assert _DIGITS.fullmatch(text.strip()) and value == int(text)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=1, max_size=5))
def test_generated_lists_refuse_duplicates(values):
    text = ",".join(map(str, values))
    if len(set(values)) == len(values):
        assert parse_int_list(text, "n") == values
    else:
        with pytest.raises(NumberError, match="twice"):
            parse_int_list(text, "n")


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**30, 10**30)),
       st.sampled_from(["", "B", "KB", "MB", "GB", "KiB", "MiB", "GiB", "%", "TB"]))
def test_generated_budgets_are_finite_positive_byte_counts(number, unit):
    text = f"{number}{unit}"
    try:
        value = parse_percent(text) if unit == "%" else parse_size(text)
    except NumberError:
        return
    assert math.isfinite(value) and value > 0
    if unit != "%":
        assert isinstance(value, int) and 1 <= value <= MAX_BYTES
    assert _DIGITS.search(text) and "e" not in text.lower().removesuffix("b").replace("kib", "").replace("mib", "")


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=True, allow_infinity=True))
def test_generated_floats_fit_float32(number):
    try:
        value = parse_float(repr(number), "--guidance")
    except NumberError:
        assert not math.isfinite(number) or abs(number) > 3.4028234663852886e38
    else:
        assert math.isfinite(value) and abs(value) <= 3.4028234663852886e38
