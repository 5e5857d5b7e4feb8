"""DINOv2 (with and without registers): the layer adapter equals the Hugging Face layer, and PiToMe
on the register model equals the original-style reference with class + register tokens protected
(ToMe with registers: test_tome_registers.py)."""

from __future__ import annotations

import pitome_reference as ref
import pytest
import torch

from tomobile.graphs import MergeConfig, merge_plan
from tomobile.graphs.models.hf_models import _dinov2_layer
from tomobile.graphs.models.registry import get_model


@pytest.mark.parametrize("name", ["dinov2-tiny", "dinov2-reg-tiny"])
def test_dinov2_layer_adapter_equals_the_hf_layer(name):
    model = get_model(name).builder(MergeConfig()).parts["model"].model
    h = torch.randn(1, 65, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for layer in model.encoder.layer:
            fns = _dinov2_layer(layer)
            ours = fns.feed_forward(fns.attend(h, None)[0])
            torch.testing.assert_close(ours, layer(h, None), atol=1e-5, rtol=1e-5)


def test_dinov2_registers_are_protected_and_pitome_matches_the_reference():
    wrapper = get_model("dinov2-reg-tiny").builder(MergeConfig.parse("pitome:ratio=0.8")).parts["model"]
    model, plan = wrapper.model, merge_plan(wrapper.model)
    assert plan.get("protected") == 5 and plan.tokens[0] == 69
    (x,) = wrapper.example_inputs(seed=4)
    with torch.no_grad():
        ours = model(pixel_values=x)
        h, size = ref.reference_layers(model.embeddings(x), [_dinov2_layer(layer) for layer in model.encoder.layer],
                                       plan)
        h = model.layernorm(h)
    torch.testing.assert_close(ours.last_hidden_state, h, atol=2e-5, rtol=1e-5)
    # the class and 4 register tokens were never merged (each still holds one token); others were
    assert torch.equal(size[:, :5], torch.ones_like(size[:, :5])) and bool((size[:, 5:] > 1).any())


@pytest.mark.parametrize("name", ["siglip-tiny", "dinov2-reg-tiny"])
def test_local_folders_of_the_new_families_load_and_merge_as_the_built_ins(tmp_path, name):
    from tomobile.graphs.models.hf_folder import load_local

    config = MergeConfig.parse("pitome:ratio=0.8")
    builtin = get_model(name).builder(config).parts["model"]
    builtin.model.save_pretrained(tmp_path)
    local = load_local(tmp_path, config).parts["model"]
    assert merge_plan(local.model) == merge_plan(builtin.model)
    (x,) = builtin.example_inputs(seed=0)
    with torch.no_grad():
        ours, theirs = dict(zip(local.output_names, local(x))), dict(zip(builtin.output_names, builtin(x)))
    assert set(ours) == set(theirs)
    for name in ours:
        torch.testing.assert_close(ours[name], theirs[name])
