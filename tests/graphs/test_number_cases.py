"""The number rules (docs/input_checks.md) on the table of cases that tomobile-native's parser is
tested on too (tests/number_cases.json; its ctest and tests/runtime/test_native_bad_input.py):
one set of rules, the same answer on both sides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tomobile.cli.checks import MAX_STEPS, MAX_THREADS
from tomobile.graphs.numbers import MAX_BYTES, NumberError, parse_int, parse_size

TABLE = json.loads((Path(__file__).parents[1] / "number_cases.json").read_text())


def _expand(text):
    if not isinstance(text, str):
        return text
    return text.replace("{max_threads+1}", str(MAX_THREADS + 1)).replace("{max_threads}", str(MAX_THREADS))


def test_the_table_states_the_python_bounds():
    """The bounds the table names are the ones the Python CLI applies."""
    options = TABLE["options"]
    assert options["--memory-budget"] == {"kind": "size", "low": 1, "high": MAX_BYTES}
    assert options["--steps"]["high"] == options["--runs"]["high"] == MAX_STEPS
    assert int(_expand(options["--threads"]["high"])) == MAX_THREADS


@pytest.mark.parametrize("case", TABLE["cases"], ids=lambda c: f"{c['option']}={c['text']!a}")
def test_number_case(case):
    option, text = case["option"], _expand(case["text"])
    rule = TABLE["options"][option]

    def parse():
        if rule["kind"] == "size":
            return parse_size(text, option)
        return parse_int(text, option, rule["low"], int(_expand(rule["high"])))

    if case["value"] is None:
        with pytest.raises(NumberError) as err:
            parse()
        assert "\n" not in str(err.value) and str(err.value).startswith(f"{option} ")
    else:
        assert parse() == int(_expand(case["value"]))
