"""Model patches: r=0 is the unpatched model exactly, patches reverse, keys stay, tokens go where ToMe puts them."""

from __future__ import annotations

import pytest
import torch

from tomobile.graphs import MergeConfig, SpecError, apply_merge, merge_plan, remove_merge
from tomobile.graphs.methods.layers import initial_state
from tomobile.graphs.methods.registry import make_plan, merged_layer
from tomobile.graphs.models.hf_models import _bert_layer, _clip_layer, _plain, _vit_layer, vit_layers
from tomobile.graphs.models.registry import get_model

# Under transformers 5 and again under 4.57, whose ViT modules are laid out differently.
pytestmark = pytest.mark.both_lines

IMAGE_MODELS = ["vit-tiny", "deit-tiny", "clip-vit-tiny"]


def _build(name: str, spec: str = "none"):
    bundle = get_model(name).builder(MergeConfig.parse(spec))
    wrapper = bundle.parts["model"]
    return wrapper, wrapper.example_inputs(seed=0)


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_r0_equals_unpatched_exactly_and_patch_reverses(name):
    wrapper, inputs = _build(name)
    with torch.no_grad():
        plain = wrapper(*inputs)[0]
        apply_merge(wrapper.model, MergeConfig.parse("tome:r=0"))
        assert torch.equal(wrapper(*inputs)[0], plain)
        keys = set(wrapper.state_dict())
        apply_merge(wrapper.model, MergeConfig.parse("tome:r=8"))
        merged = wrapper(*inputs)[0]
        assert set(wrapper.state_dict()) == keys
        assert not torch.equal(merged, plain)
        remove_merge(wrapper.model)
        assert merge_plan(wrapper.model) is None
        assert torch.equal(wrapper(*inputs)[0], plain)


def _layer_pairs():
    """(name, HF layer, our layer functions, how the HF layer is called, width)."""
    vit, _ = _build("vit-tiny")
    clip, _ = _build("clip-vit-tiny")
    return [
        ("vit", vit_layers(vit.model.vit)[1], _vit_layer, _plain),
        ("clip", clip.model.vision_model.encoder.layers[1], _clip_layer, _plain),
    ]


@pytest.mark.parametrize("case", range(2))
def test_our_layer_at_r0_matches_hugging_face_layer(case):
    """Our attention + MLP path (used from the first merge on) computes what HF's layer does."""
    _, layer, fns, call = _layer_pairs()[case]
    x = torch.randn(2, 65, 64, generator=torch.Generator().manual_seed(0))
    plan = make_plan(MergeConfig(), 1, 65, class_token=True)
    with torch.no_grad():
        ours = merged_layer(fns(layer), initial_state(x, None, False), 0, plan).x
        torch.testing.assert_close(ours, call(layer, x), atol=1e-5, rtol=1e-5)


def test_bert_layer_matches_hugging_face_layer():
    wrapper, _ = _build("minilm-l6")
    layer = wrapper.model.encoder.layer[0]
    x = torch.randn(1, 128, 384, generator=torch.Generator().manual_seed(0))
    plan = make_plan(MergeConfig(), 1, 128, class_token=True)
    with torch.no_grad():
        ours = merged_layer(_bert_layer(layer), initial_state(x, torch.ones(1, 128), False), 0, plan).x
        torch.testing.assert_close(ours, layer(x)[0] if isinstance(layer(x), tuple) else layer(x), atol=1e-5,
                                   rtol=1e-5)


def test_plan_counts_tokens_and_rejects_too_large_r():
    plan = make_plan(MergeConfig.parse("tome:r=16"), 12, 197, class_token=True)
    # ToMe's clamp: 16 per layer while tokens last (197 -> 21 after 11 layers), then 10.
    assert plan.r == (16,) * 11 + (10,)
    assert plan.tokens == tuple(197 - 16 * i for i in range(12)) + (11,)
    with pytest.raises(SpecError, match="layer 2 .* allows r <= 12"):
        make_plan(MergeConfig.parse("tome:r=20,20,20"), 3, 65, class_token=True)  # 65, 45, then 25 tokens
    with pytest.raises(SpecError, match="layer 0 .* allows r <= 32"):
        make_plan(MergeConfig.parse("tome:r=33"), 4, 65, class_token=True)
    wrapper, _ = _build("vit-tiny")
    with pytest.raises(SpecError, match="too large"):
        apply_merge(wrapper.model, MergeConfig.parse("tome:r=33"))


def test_decreasing_and_list_schedules():
    assert MergeConfig.parse("tome:r=8,schedule=decreasing").per_layer(5) == [16, 12, 8, 4, 0]
    assert MergeConfig.parse("tome:r=4,8,8").per_layer(4) == [4, 8, 8, 0]
    plan = make_plan(MergeConfig.parse("tome:r=4,8,8"), 4, 65, class_token=True)
    assert plan.tokens == (65, 61, 53, 45, 45)


@pytest.mark.parametrize("spec", ["tome", "tome:", "tome:r=", "tome:r=x", "tome:r=-1", "bogus:r=3",
                                  "tome:r=4,schedule=sideways", "tome:r=4,8,schedule=decreasing", "tome:r=4,foo=1"])
def test_malformed_specs_raise_spec_error(spec):
    with pytest.raises(SpecError):
        MergeConfig.parse(spec)


def test_deit_keeps_class_and_distillation_tokens_in_front():
    wrapper, inputs = _build("deit-tiny")
    deit = wrapper.model.deit
    apply_merge(wrapper.model, MergeConfig.parse("tome:r=8,trace_source=1"))
    plan = merge_plan(wrapper.model)
    assert plan.distill_token and plan.tokens[-1] == 66 - 32
    from tomobile.graphs.models.hf_models import _run

    with torch.no_grad():
        x = deit.embeddings(inputs[0])
        state = _run(vit_layers(deit), _vit_layer, initial_state(x, None, True), plan, None)
    assert state.source.shape == (1, 34, 66)
    assert state.source[0, 0, 0] == 1 and state.source[0, 0].sum() == 1
    assert state.source[0, 1, 1] == 1 and state.source[0, 1].sum() == 1


def test_minilm_padding_content_does_not_change_real_tokens():
    bundle = get_model("minilm-l6").builder(MergeConfig.parse("tome:r=8"))
    wrapper = bundle.parts["model"]
    ids, mask = bundle.real_inputs["model"]()
    other = ids.clone()
    other[mask == 0] = 1037  # a real word where the padding was; mask still 0
    with torch.no_grad():
        tok_a, emb_a = wrapper(ids, mask)
        tok_b, emb_b = wrapper(other, mask)
    real = mask[0].bool()
    torch.testing.assert_close(tok_a[0, real], tok_b[0, real], atol=1e-5, rtol=0)
    torch.testing.assert_close(emb_a, emb_b, atol=1e-6, rtol=0)
    assert tok_a.shape == (1, 128, 384)  # unmerged back to full length


def test_minilm_merging_real_tokens_keeps_embedding_close():
    """Without padding every merge hits real tokens; the embedding moves but stays close."""
    bundle = get_model("minilm-l6").builder(MergeConfig())
    wrapper = bundle.parts["model"]
    ids = torch.randint(1000, 20000, (1, 128), generator=torch.Generator().manual_seed(0))
    mask = torch.ones(1, 128, dtype=torch.int64)
    assert wrapper.output_names == ("last_hidden_state", "sentence_embedding")
    with torch.no_grad():
        base = wrapper(ids, mask)[1]
        apply_merge(wrapper.model, MergeConfig.parse("tome:r=8"), seq_len=128)
        merged = wrapper(ids, mask)[1]
    cos = float((base * merged).sum())
    assert 0.8 < cos < 1.0 - 1e-6
