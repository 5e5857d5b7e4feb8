"""DiffRate's static prune-then-merge against the original-style reference
(tests/diffrate_reference.py): random inputs, exact ties, whole ViT / DeiT forwards, the SPEC and
the official compression_rate.json format."""

from __future__ import annotations

import json

import diffrate_reference as ref
import pytest
import torch

from tomobile.graphs import MergeConfig, SpecError, merge_plan
from tomobile.graphs.methods.diffrate import diffrate_step
from tomobile.graphs.methods.merge import one_hot_assignment
from tomobile.graphs.methods.registry import make_plan
from tomobile.graphs.models.hf_models import _vit_layer, vit_layers
from tomobile.graphs.models.registry import get_model


def _static(x, attn, size, prune, merge, p):
    t = x.shape[1]
    mid = min(t, prune)
    kept = min(mid, merge)
    pos, scale = diffrate_step(x, attn, mid, kept, p)
    m = one_hot_assignment(pos, kept, x.dtype)
    return (m @ x) / m.sum(dim=-1, keepdim=True), m @ (size * scale)


def _check(x, attn, size, prune, merge, p):
    ours = _static(x, attn, size, prune, merge, p)
    theirs = ref.diffrate_step(x, attn, size, prune, merge, p)[:2]
    for a, b in zip(ours, theirs, strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("p", [1, 2])
def test_random_inputs_match_the_reference(p):
    gen = torch.Generator().manual_seed(p)
    for n, prune, merge in [(17, 17, 12), (17, 12, 17), (33, 25, 10), (33, 40, 20), (20, 20, 20), (9, 5, 3)]:
        x = torch.randn(2, n, 6, generator=gen)
        attn = torch.randn(2, 3, n, n, generator=gen).softmax(dim=-1)
        size = torch.rand(2, n, 1, generator=gen) * 2 + 1
        _check(x, attn, size, prune, merge, p)


def test_exact_ties_break_as_a_stable_sort():
    # 24 tokens in 4 directions, scaled by powers of two: unit vectors and similarities (0 or 1) are
    # exact in any matmul, so equal scores are truly equal and the lowest index must win
    gen = torch.Generator().manual_seed(5)
    x = torch.eye(6)[torch.arange(24) % 4] * (2.0 ** (torch.arange(24) % 3))[:, None]
    x = x[None]
    size = torch.rand(1, 24, 1, generator=gen) + 1
    attn = torch.full((1, 2, 24, 24), 1.0 / 24)  # every class-attention value equal
    _check(x, attn, size, 20, 9, 1)
    attn = torch.tensor([1.0, 2.0, 2.0, 3.0]).repeat(6).softmax(-1).expand(1, 2, 24, 24)  # ties in groups
    _check(x, attn, size, 24, 7, 2)
    _check(x, attn, size, 18, 18, 1)


def _reference_forward(backbone, pixel_values, plan):
    p = plan.get("protected")
    x = backbone.embeddings(pixel_values)
    size = torch.ones(1, x.shape[1], 1)
    for i, layer in enumerate(vit_layers(backbone)):
        fns = _vit_layer(layer)
        x, _, attn = fns.attend(x, size.log().reshape(1, 1, 1, -1) if plan.prop_attn else None)
        x, size, _ = ref.diffrate_step(x, attn, size, plan.get("prune_kept_num")[i], plan.get("merge_kept_num")[i], p)
        x = fns.feed_forward(x)
    return backbone.layernorm(x)


@pytest.mark.parametrize("name,spec", [
    ("vit-tiny", "diffrate:prune=65,60,50,40,merge=65,55,45,30"),
    ("vit-tiny", "diffrate:prune=65,65,65,65,merge=60,61,50,50,prop_attn=0"),
    ("deit-tiny", "diffrate:prune=66,50,40,30,merge=60,60,35,12"),
])
def test_whole_model_forward_matches_the_reference(name, spec):
    wrapper = get_model(name).builder(MergeConfig.parse(spec)).parts["model"]
    backbone = wrapper.model.vit if hasattr(wrapper.model, "vit") else wrapper.model.deit
    plan = merge_plan(wrapper.model)
    (x,) = wrapper.example_inputs(seed=2)
    with torch.no_grad():
        ours = backbone(x).last_hidden_state
        theirs = _reference_forward(backbone, x, plan)
    assert ours.shape == theirs.shape == (1, plan.tokens[-1], 64)
    torch.testing.assert_close(ours, theirs, atol=2e-5, rtol=1e-5)


def test_spec_file_and_refusals(tmp_path):
    path = tmp_path / "compression_rate.json"
    path.write_text(json.dumps({"ViT-T": {"0.6": {"prune_kept_num": "[65,60,50,3]", "merge_kept_num": "[65,55,45,3]"}}}))
    config = MergeConfig.parse(f"diffrate:file={path},model=ViT-T,flops=0.6")
    assert config.params.prune == (65, 60, 50, 3) and MergeConfig.parse(config.describe()) == config
    assert make_plan(config, 4, 65, True).tokens == (65, 65, 55, 45, 3)
    assert MergeConfig.parse(config.oracle().describe()) == config.oracle()
    bad = ["diffrate:prune=65,merge=65,merge=3", f"diffrate:file={path},model=ViT-S,flops=0.6",
           f"diffrate:file={path},model=ViT-T,flops=0.7", f"diffrate:file={tmp_path}/none.json,model=a,flops=1",
           "diffrate:prune=65,60", "diffrate:prune=6x,merge=1", "diffrate:merge=3,prune=1,foo=2"]
    for spec in bad:
        with pytest.raises(SpecError):
            MergeConfig.parse(spec)
    for spec, layers in [("diffrate:prune=65,60,merge=65,60", 4), ("diffrate:prune=65,1,merge=65,60", 2)]:
        with pytest.raises(SpecError):
            make_plan(MergeConfig.parse(spec), layers, 65, True)
