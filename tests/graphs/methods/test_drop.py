"""The token-drop oracle `drop:`: ToMe's plan and shapes, first T' tokens kept, no merge work."""

from __future__ import annotations

import pytest
import torch

from tomobile.graphs import MergeConfig, SpecError, apply_merge, merge_plan
from tomobile.graphs.models.registry import get_model


@pytest.mark.parametrize("spec", ["r=16", "r=8,schedule=decreasing", "r=4,8,8", "r=16,prop_attn=0"])
def test_drop_parses_every_tome_form_into_the_same_plan(spec):
    tome, drop = MergeConfig.parse(f"tome:{spec}"), MergeConfig.parse(f"drop:{spec}")
    assert drop.drops and not tome.drops and drop.method == "drop"
    assert drop.params.params == tome.params and drop.params.like == "tome"
    assert drop == tome.oracle() and drop.oracle() is None
    assert drop.describe().startswith("drop:r=") and MergeConfig.parse(drop.describe()) == drop


@pytest.mark.parametrize("spec", ["drop", "drop:", "drop:8", "drop:r=x", "drop:r=-1", "droop:r=8"])
def test_bad_drop_specs_are_refused(spec):
    with pytest.raises(SpecError):
        MergeConfig.parse(spec)


@pytest.mark.parametrize("name", ["vit-tiny", "deit-tiny", "clip-vit-tiny"])
def test_drop_keeps_the_first_tokens_with_tomes_token_counts(name):
    entry = get_model(name)
    tome = entry.builder(MergeConfig.parse("tome:r=8")).parts["model"]
    drop = entry.builder(MergeConfig.parse("drop:r=8")).parts["model"]
    assert merge_plan(drop.model).tokens == merge_plan(tome.model).tokens
    assert merge_plan(drop.model).drop and not merge_plan(tome.model).drop
    (x,) = drop.example_inputs(seed=0)
    with torch.no_grad():
        assert drop(x)[0].shape == tome(x)[0].shape
        assert not torch.equal(drop(x)[0], tome(x)[0])


def test_drop_layer_output_is_the_unmerged_layers_first_tokens():
    """One dropping layer: attention over all T tokens, then the MLP on the first T - r only, so its
    kept tokens equal the unpatched layer's outputs there exactly (up to our attention's rounding)."""
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(0)
    cfg = ViTConfig(image_size=32, patch_size=4, hidden_size=64, num_hidden_layers=1, num_attention_heads=4,
                    intermediate_size=128)
    model = ViTModel(cfg, add_pooling_layer=False).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        full = model(pixel_values=x).last_hidden_state  # (1, 65, 64)
        apply_merge(model, MergeConfig.parse("drop:r=12"))
        dropped = model(pixel_values=x).last_hidden_state  # (1, 53, 64)
    assert dropped.shape == (1, 53, 64)
    torch.testing.assert_close(dropped, full[:, :53], atol=1e-5, rtol=1e-5)
