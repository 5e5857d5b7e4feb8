"""VideoDiT structure: patchify round trip, caption mask, CFG wrapper, shipped checkpoint."""

import torch

from tomobile.graphs.methods.tdtm import TdtmOdd, TdtmPositions
from tomobile.graphs.models.video_dit import VideoDiT, VideoDiTConfig, VideoMerge
from tomobile.graphs.models.video_zoo import (
    VARIANTS,
    WEIGHTS,
    GuidedDenoiser,
    checkpoint_config,
    guided_velocity,
    load_video_dit,
    pipeline_manifest,
)

SMALL = VideoDiTConfig(frames=4, size=8, patch=2, hidden=16, depth=1, heads=2, caption_len=4, caption_dim=8,
                      pooled_caption=True, frame_pos=True, x0_prediction=True)


def _model():
    torch.manual_seed(0)
    model = VideoDiT(SMALL).eval()
    torch.nn.init.normal_(model.final_linear.weight, std=0.1)
    return model


def test_patchify_unpatchify_round_trip():
    model = _model()
    x = torch.randn(2, 3, 4, 8, 8)
    p = model.patchify(x)
    assert p.shape == (2, 4, 16, 12)
    assert torch.equal(model.unpatchify(p), x)


def test_padded_caption_tokens_do_not_change_the_output():
    model = _model()
    x, t = torch.randn(1, 3, 4, 8, 8), torch.rand(1)
    y = torch.randn(1, 4, 8)
    mask = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    y2 = y.clone()
    y2[:, 2:] = torch.randn(1, 2, 8) * 5
    torch.testing.assert_close(model(x, t, y, mask), model(x, t, y2, mask), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(model(x, t, y, torch.ones(1, 4)), model(x, t, y2, torch.ones(1, 4)))


def test_guidance_one_is_the_conditional_velocity():
    model = _model()
    x, t, y, mask = torch.randn(1, 3, 4, 8, 8), torch.rand(1), torch.randn(1, 4, 8), torch.ones(1, 4)
    v = guided_velocity(model, x, t, y, mask, torch.ones(1), VideoMerge())
    torch.testing.assert_close(v, model(x, t, y, mask), rtol=1e-4, atol=1e-5)


def test_caption_drop_swaps_in_null_caption():
    model = _model()
    y, mask = torch.randn(2, 4, 8), torch.tensor([[1.0, 0, 0, 0], [1.0, 1, 0, 0]])
    y2, m2 = model.caption_states(y, mask, torch.tensor([0.0, 1.0]))
    assert torch.equal(y2[0], y[0]) and torch.equal(m2[0], mask[0])
    assert torch.equal(y2[1], model.y_null) and torch.equal(m2[1], torch.ones(4))


def test_shipped_checkpoint_loads_small_and_runs_every_variant():
    assert WEIGHTS.stat().st_size < 25 * 1024 * 1024
    model = load_video_dit()
    outs = {}
    for name, merge in VARIANTS.items():
        wrapper = GuidedDenoiser(model, merge)
        (v,) = wrapper(*wrapper.example_inputs(0))
        assert v.shape == wrapper.input_specs[0].shape and torch.isfinite(v).all()
        outs[name] = v
    assert not torch.equal(outs["denoiser"], outs["denoiser_tdtm"])


def test_frame_index_embedding_tells_frames_apart():
    # Identical frames: temporal attention mixes identical values whatever RoPE's weights, so only
    # the frame-index embedding can make the frames' outputs differ.
    x = torch.randn(1, 3, 1, 8, 8).expand(1, 3, 4, 8, 8).contiguous()
    t, y, mask = torch.rand(1), torch.randn(1, 4, 8), torch.ones(1, 4)
    outs = {}
    for frame_pos in (False, True):
        torch.manual_seed(0)
        model = VideoDiT(VideoDiTConfig(**{**SMALL.__dict__, "frame_pos": frame_pos})).eval()
        torch.nn.init.normal_(model.final_linear.weight, std=0.1)
        outs[frame_pos] = model(x, t, y, mask)
    spread = {k: (v - v[:, :, :1]).abs().max().item() for k, v in outs.items()}
    assert spread[False] < 1e-5 < 1e-3 < spread[True]


def test_pooled_caption_reaches_the_modulation():
    # Cross-attention zeroed: the caption can only act through the pooled embedding in adaLN.
    torch.manual_seed(0)
    model = VideoDiT(SMALL).eval()
    torch.nn.init.normal_(model.final_linear.weight, std=0.1)
    for block in [*model.spatial_blocks, *model.temporal_blocks]:
        torch.nn.init.zeros_(block.cross_attn.proj.weight)
        torch.nn.init.zeros_(block.cross_attn.proj.bias)
    x, t, mask = torch.randn(1, 3, 4, 8, 8), torch.rand(1), torch.ones(1, 4)
    assert not torch.allclose(model(x, t, torch.randn(1, 4, 8), mask), model(x, t, torch.randn(1, 4, 8), mask))


def test_x0_prediction_returns_the_velocity_toward_the_predicted_clip():
    # With the output layer at zero the network predicts x0 = 0, so v = (x - 0) / t; t is floored.
    torch.manual_seed(0)
    model = VideoDiT(SMALL).eval()  # final_linear starts at zero
    x, y, mask = torch.randn(2, 3, 4, 8, 8), torch.randn(2, 4, 8), torch.ones(2, 4)
    t = torch.tensor([0.5, 0.0])
    v = model(x, t, y, mask)
    torch.testing.assert_close(v[0], x[0] / 0.5)
    torch.testing.assert_close(v[1], x[1] / 1e-3)


def test_shipped_checkpoint_records_the_original_tdtm_modes():
    """It was fine-tuned with TDTM at On-device Sora's positions (docs/video.md), so the defaults hold."""
    cfg = checkpoint_config()
    assert cfg.tdtm_positions is TdtmPositions.ORIGINAL and cfg.tdtm_odd is TdtmOdd.ORIGINAL
    assert load_video_dit().cfg == cfg


def test_asked_tdtm_modes_replace_the_recorded_ones_and_reach_the_manifest():
    model = load_video_dit(WEIGHTS, "midpoint", "keep")
    assert model.cfg.tdtm_positions is TdtmPositions.MIDPOINT and model.cfg.tdtm_odd is TdtmOdd.KEEP
    # RoPE of the 4 merged frames at 2i + 0.5 instead of 0..3: the angle table's first column.
    assert torch.allclose(model.rope_cos_tdtm[:, 0], torch.cos(torch.tensor([0.5, 2.5, 4.5, 6.5])))
    assert torch.allclose(load_video_dit().rope_cos_tdtm[:, 0], torch.cos(torch.arange(4.0)))
    manifest = pipeline_manifest(model.cfg)
    assert manifest["tdtm"]["positions"] == "midpoint" and manifest["tdtm"]["odd_frames"] == "keep"
    assert manifest["model_config"]["tdtm_positions"] == "midpoint"
