"""The denoiser split into parts: the eager chain is the guided denoiser, each part holds its own
weights, merged variants where the merge changes a block; the random-weight models' sizes."""

import pytest
import torch

from tomobile.graphs.models.registry import get_model
from tomobile.graphs.models.video_parts import run_chain, split_denoisers
from tomobile.graphs.spec.config import MergeConfig

INPUT_NAMES = ("x", "t", "states", "mask", "guidance")


@pytest.fixture(scope="module")
def tiny():
    bundle = get_model("video-dit-tiny").builder(MergeConfig())
    return bundle, split_denoisers(bundle)


@pytest.mark.parametrize("variant", ["denoiser", "denoiser_tdtm", "denoiser_tome", "denoiser_tdtm_tome"])
def test_chain_of_parts_is_the_guided_denoiser_bit_for_bit(tiny, variant):
    bundle, split = tiny
    wrapper = bundle.parts[variant]
    for seed in (0, 5):
        inputs = wrapper.example_inputs(seed=seed)
        with torch.no_grad():
            expected = wrapper(*inputs)[0]
        env = run_chain(split.parts, split.manifest["split"]["sequences"][variant], dict(zip(INPUT_NAMES, inputs, strict=True)))
        assert torch.equal(env["velocity"], expected)


def test_sequences_name_merged_variants_only_where_the_merge_changes_the_block(tiny):
    _, split = tiny
    seqs = split.manifest["split"]["sequences"]
    assert seqs["denoiser"] == ["dit_embed", "dit_spatial00", "dit_temporal00", "dit_spatial01", "dit_temporal01",
                                "dit_spatial02", "dit_temporal02", "dit_final"]
    assert seqs["denoiser_tome"][1:3] == ["dit_spatial00_tome", "dit_temporal00"]  # ToMe is spatial only
    assert seqs["denoiser_tdtm_tome"][1:3] == ["dit_spatial00_tdtm_tome", "dit_temporal00_tdtm"]
    assert all(len(s) == 8 for s in seqs.values())
    # embed, final; 6 plain and 6 TDTM blocks; 3 spatial ToMe and 3 spatial TDTM + ToMe blocks
    assert len({n for s in seqs.values() for n in s}) == 2 + 6 + 6 + 3 + 3


def test_each_part_holds_only_its_own_weights(tiny):
    bundle, split = tiny
    model = bundle.parts["denoiser"].model
    owned = [{id(p) for p in split.parts[n].parameters()} for n in split.manifest["split"]["sequences"]["denoiser"]]
    assert sum(len(s) for s in owned) == len(set().union(*owned))  # no weight in two parts
    assert set().union(*owned) == {id(p) for p in model.parameters()}  # and every weight in one


def test_each_part_is_checked_on_the_activations_of_the_eager_chain(tiny):
    """A block's example inputs are what the eager parts before it computed, not random tensors."""
    bundle, split = tiny
    inputs = bundle.parts["denoiser"].example_inputs(seed=0)
    env = run_chain(split.parts, ["dit_embed", "dit_spatial00"], dict(zip(INPUT_NAMES, inputs, strict=True)))
    h01, caption, bias, t0 = split.parts["dit_temporal00"].example_inputs(seed=0)
    assert torch.equal(h01, env["h01"]) and torch.equal(t0, env["t0"]) and torch.equal(bias, env["caption_bias"])


def test_split_needs_a_video_denoiser():
    bundle = get_model("vit-tiny").builder(MergeConfig())
    with pytest.raises(ValueError, match="needs a video denoiser"):
        split_denoisers(bundle)


def test_video_dit_large_has_a_real_size():
    from tomobile.graphs.models.video_dit import VideoDiT
    from tomobile.graphs.models.video_random import LARGE, weight_bytes

    with torch.device("meta"):  # sizes without allocating 737 MB
        model = VideoDiT(LARGE)
    assert weight_bytes(model) >= 500e6 and LARGE.hidden == 1152
    block = weight_bytes(model.spatial_blocks[0])
    assert 84e6 < block < 86e6  # one STDiT3-XL/2-wide block, fp32
    assert LARGE.frames * LARGE.tokens <= 256  # few tokens: seconds per step on a CPU
