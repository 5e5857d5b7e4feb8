"""Merge SPEC parsing: plain ASCII digits, each option once, and nothing but SpecError on garbage
(issue 13, spec-parsing rough edges)."""

from __future__ import annotations

import random

import pytest

from tomobile.graphs.methods.tome import Schedule
from tomobile.graphs.spec.config import MergeConfig
from tomobile.graphs.spec.grammar import SpecError, parse_items


@pytest.mark.parametrize("spec,needle", [
    ("tome:r=1_0", "not an integer"), ("tome:r=\u0661\u0660", "not an integer"), ("tome:r=+3", "not an integer"),
    ("tome:r=8,1_6", "not an integer"), ("tome:r=-3", "negative"), ("tome:r=8,r=9", "r is given twice"),
    ("tome:r=8,schedule=constant,schedule=decreasing", "schedule is given twice"),
    ("tome:r=8,prop_attn=1,prop_attn=0", "prop_attn is given twice"),
    ("tome:r=8,trace_source=0,trace_source=1", "trace_source is given twice"),
    ("tome:r=8,prop_attn=\u0661", "must be 0 or 1"),
])
def test_spec_refuses_lookalike_numbers_and_duplicate_keys(spec, needle):
    with pytest.raises(SpecError, match=needle):
        MergeConfig.parse(spec)


def test_plain_specs_still_parse():
    assert MergeConfig.parse("tome:r=16").r == (16,)
    assert MergeConfig.parse(" tome:r=4, 8,8,16 ").r == (4, 8, 8, 16)
    cfg = MergeConfig.parse("tome:r=8, schedule=decreasing,prop_attn=0")
    assert cfg.schedule is Schedule.DECREASING and not cfg.prop_attn


def test_parse_items_serves_any_method():
    assert parse_items("drop:r=3,keep=1", "r=3,keep=1", first="r", keys=("keep",)) == ([3], {"keep": "1"})
    with pytest.raises(SpecError, match="keep is given twice"):
        parse_items("drop:r=3,keep=1,keep=0", "r=3,keep=1,keep=0", first="r", keys=("keep",))


def test_random_garbage_specs_give_spec_errors_only():
    rng = random.Random(13)
    alphabet = "tome:r=,;0123456789 _-+.x\u0661decreasingconstantprop_attntrace_sourceschedule="
    parsed = refused = 0
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        for spec in (text, "tome:" + text, "tome:r=" + text[:3]):
            try:
                cfg = MergeConfig.parse(spec)
            except SpecError as err:  # any other exception fails the test
                refused += 1
                assert str(err) and "\n" not in str(err)
            else:
                parsed += 1
                assert all(type(r) is int and r >= 0 for r in getattr(cfg.params, "r", ()))
    assert parsed and refused
