"""PiToMe's static merge against the original-style reference (tests/pitome_reference.py):
random inputs, exact ties, degenerate metrics, and whole ViT / DeiT forwards."""

from __future__ import annotations

import math

import pitome_reference as ref
import pytest
import torch

from tomobile.graphs import MergeConfig, SpecError, merge_plan
from tomobile.graphs.methods.merge import merge_wavg, one_hot_assignment
from tomobile.graphs.methods.pitome import merge_count, pitome_assignment, with_protected
from tomobile.graphs.methods.registry import make_plan
from tomobile.graphs.models.hf_models import _clip_layer, _vit_layer, vit_layers
from tomobile.graphs.models.registry import get_model


def _static(metric, x, size, ratio, margin, bsm, protected):
    r = merge_count(metric.shape[1] - protected, ratio)
    pos = pitome_assignment(metric[:, protected:], r, margin, bsm)
    m = one_hot_assignment(with_protected(pos, protected), x.shape[1] - r, x.dtype)
    return merge_wavg(m, x, size)


def _check(metric, x, size, ratio, margin, bsm, protected, atol=1e-6):
    ours = _static(metric, x, size, ratio, margin, bsm, protected)
    theirs = ref.merge_wavg(ref.pitome_vision(metric, ratio, margin, protected, bsm), x, size)
    for a, b in zip(ours, theirs, strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, atol=atol, rtol=1e-5)


@pytest.mark.parametrize("bsm", [True, False])
@pytest.mark.parametrize("protected", [0, 1, 2])
def test_random_inputs_match_the_reference(bsm, protected):
    gen = torch.Generator().manual_seed(20 + protected + 3 * bsm)
    for t, ratio, margin in [(17, 0.9, 0.75), (33, 0.5, 0.5), (64, 0.7, 0.1), (50, 0.95, 0.0), (9, 0.6, 0.9)]:
        metric = torch.randn(2, t + protected, 8, generator=gen)
        x = torch.randn(2, t + protected, 5, generator=gen)
        size = torch.rand(2, t + protected, 1, generator=gen) * 3 + 1
        _check(metric, x, size, ratio, margin, bsm, protected)


@pytest.mark.parametrize("bsm", [True, False])
def test_exact_ties_break_as_a_stable_sort(bsm):
    gen = torch.Generator().manual_seed(7)
    base = torch.randn(1, 4, 6, generator=gen)
    metric = base.repeat(1, 6, 1)  # 24 tokens, each row 6 times: equal energies and similarities
    x = torch.randn(1, 24, 3, generator=gen)
    _check(metric, x, torch.ones(1, 24, 1), 0.7, 0.75, bsm, 0)
    _check(torch.cat([torch.randn(1, 1, 6, generator=gen), metric], 1), torch.randn(1, 25, 3, generator=gen),
           torch.ones(1, 25, 1), 0.75, 0.5, bsm, 1)


@pytest.mark.parametrize("bsm", [True, False])
def test_degenerate_metrics(bsm):
    x = torch.randn(1, 21, 4, generator=torch.Generator().manual_seed(3))
    size = torch.ones(1, 21, 1)
    for metric in (torch.zeros(1, 21, 5), torch.ones(1, 21, 5), torch.eye(21)[None, :, :5]):
        _check(metric, x, size, 0.6, 0.75, bsm, 1)


def test_plan_counts_margins_and_refusals():
    plan = make_plan(MergeConfig.parse("pitome:ratio=0.9"), 12, 197, class_token=True)
    tokens = [197]
    for _ in range(12):
        tokens.append(tokens[-1] - math.floor((tokens[-1] - 1) - (tokens[-1] - 1) * 0.9))
    assert list(plan.tokens) == tokens and plan.get("bsm_layers") == 6
    assert plan.get("margin_per_layer")[0] == 0.75 and plan.get("margin_per_layer")[6] == 0.75 - 0.75 * 6 / 12
    assert make_plan(MergeConfig.parse("pitome:ratio=0.8,0.9"), 4, 65, True).r == (12, 5, 0, 0)
    for spec in ("pitome:ratio=0.4", "pitome:ratio=1.5", "pitome:ratio=0.9,bsm_layers=13", "pitome:ratio=-1",
                 "pitome:ratio=9e-1"):
        with pytest.raises(SpecError):
            make_plan(MergeConfig.parse(spec), 12, 197, True)
    config = MergeConfig.parse("pitome:ratio=0.9,0.8,margin=0.5,bsm_layers=2,prop_attn=1")
    assert MergeConfig.parse(config.describe()) == config


def _reference_forward(backbone, pixel_values, plan):
    """The patched ViT/DeiT backbone's last_hidden_state, recomputed with the reference merge."""
    x, _ = ref.reference_layers(backbone.embeddings(pixel_values), [_vit_layer(layer) for layer in vit_layers(backbone)],
                                plan)
    return backbone.layernorm(x)


@pytest.mark.parametrize("name,spec", [("vit-tiny", "pitome:ratio=0.9"), ("deit-tiny", "pitome:ratio=0.8"),
                                       ("vit-tiny", "pitome:ratio=0.7,margin=0.5,bsm_layers=1,prop_attn=1")])
def test_whole_model_forward_matches_the_reference(name, spec):
    wrapper = get_model(name).builder(MergeConfig.parse(spec)).parts["model"]
    backbone = wrapper.model.vit if hasattr(wrapper.model, "vit") else wrapper.model.deit
    plan = merge_plan(wrapper.model)
    (x,) = wrapper.example_inputs(seed=1)
    with torch.no_grad():
        ours = backbone(x).last_hidden_state
        theirs = _reference_forward(backbone, x, plan)
    assert ours.shape == (1, plan.tokens[-1], 64) and plan.tokens[-1] < plan.tokens[0]
    torch.testing.assert_close(ours, theirs, atol=2e-5, rtol=1e-5)


def test_siglip_without_class_token_matches_the_reference():
    """SigLIP: no class token, nothing protected, the attention-pool head reads the merged tokens."""
    wrapper = get_model("siglip-tiny").builder(MergeConfig.parse("pitome:ratio=0.8")).parts["model"]
    model, plan = wrapper.model, merge_plan(wrapper.model)
    assert plan.get("protected") == 0 and plan.tokens[0] == 64
    (x,) = wrapper.example_inputs(seed=3)
    with torch.no_grad():
        ours = model(pixel_values=x)
        h, _ = ref.reference_layers(model.embeddings(x), [_clip_layer(layer) for layer in model.encoder.layers], plan)
        h = model.post_layernorm(h)
    torch.testing.assert_close(ours.last_hidden_state, h, atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(ours.pooler_output, model.head(h), atol=2e-5, rtol=1e-5)
