"""The merge-method registry: every method parses, plans and patches through one table, and
its `drop:` twin keeps the same token counts."""

from __future__ import annotations

import pytest
import torch

from tomobile.graphs import MergeConfig, SpecError, apply_merge, merge_plan
from tomobile.graphs.methods.registry import get_method, make_plan, methods
from tomobile.graphs.models.registry import get_model
from tomobile.graphs.spec.config import spec_help

# One SPEC per merge method (a method in the table without one here fails the test below).
SPECS = {"tome": "tome:r=8", "pitome": "pitome:ratio=0.8", "diffrate": "diffrate:prune=65,60,50,40,merge=65,55,45,30"}


def test_every_method_is_listed_in_the_help_and_has_a_spec_here():
    table = methods()
    assert list(table)[:3] == ["none", "tome", "drop"]
    for name, method in table.items():
        assert method.grammar.split(":")[0].split(" ")[0] == name and method.grammar in spec_help()
    # tomesd merges Stable Diffusion UNets, not encoder layers: tests/graphs/methods/test_tomesd.py; tdtm the
    # frames of diffusers video transformers: tests/graphs/models/test_video_transformers.py
    assert set(table) - {"none", "drop", "tomesd", "tdtm"} == set(SPECS)


def test_unknown_methods_and_empty_bodies_are_spec_errors():
    for spec in ("tomee:r=8", "tome:", "none:r=1", "drop:none", "drop:drop:r=8", "drop:tome:"):
        with pytest.raises(SpecError):
            MergeConfig.parse(spec)
    with pytest.raises(SpecError, match="methods: none, tome, drop, pitome, diffrate"):
        get_method("nope")


@pytest.mark.parametrize("method", sorted(SPECS))
def test_spec_round_trips_and_the_drop_twin_keeps_the_token_counts(method):
    config = MergeConfig.parse(SPECS[method])
    assert config.method == method and MergeConfig.parse(config.describe()) == config
    assert config.to_json()["method"] == method
    twin = config.oracle()
    assert twin is not None and twin.drops and MergeConfig.parse(twin.describe()) == twin
    plan, drop_plan = make_plan(config, 4, 65, True), make_plan(twin, 4, 65, True)
    assert drop_plan.tokens == plan.tokens and drop_plan.method == "drop" and plan.method == method
    assert plan.to_json()["method"] == method


@pytest.mark.parametrize("method", sorted(SPECS))
def test_each_method_patches_vit_tiny_and_reverses(method):
    entry = get_model("vit-tiny")
    wrapper = entry.builder(MergeConfig.parse(SPECS[method])).parts["model"]
    plan = merge_plan(wrapper.model)
    assert plan.method == method and plan.tokens[-1] < plan.tokens[0]
    (x,) = wrapper.example_inputs(seed=0)
    plain = entry.builder(MergeConfig()).parts["model"]
    with torch.no_grad():
        merged = wrapper(x)[0]
        apply_merge(wrapper.model, MergeConfig())
        assert torch.equal(wrapper(x)[0], plain(x)[0]) and not torch.equal(merged, plain(x)[0])
