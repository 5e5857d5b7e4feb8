"""TDTM: frame-pair averaging and its copy-back, alone and inside the VideoDiT blocks."""

import pytest
import torch

from tomobile.graphs.tdtm import (
    merge_frame_tokens,
    merge_frames,
    merged_frames,
    merged_positions,
    unmerge_frame_tokens,
    unmerge_frames,
)
from tomobile.graphs.video_dit import STBlock, VideoDiT, VideoDiTConfig, VideoMerge

SMALL = VideoDiTConfig(frames=4, size=8, patch=2, hidden=16, depth=1, heads=2, caption_len=4, caption_dim=8,
                      pooled_caption=True, frame_pos=True, x0_prediction=True)


@pytest.mark.parametrize("frames", [2, 4, 5, 7, 8])
def test_merge_averages_pairs_and_keeps_odd_last(frames):
    x = torch.randn(2, frames, 3, 4)
    m = merge_frames(x)
    assert m.shape == (2, merged_frames(frames), 3, 4)
    for i in range(frames // 2):
        torch.testing.assert_close(m[:, i], (x[:, 2 * i] + x[:, 2 * i + 1]) / 2)
    if frames % 2:
        assert torch.equal(m[:, -1], x[:, -1])


@pytest.mark.parametrize("frames", [4, 5])
def test_unmerge_copies_to_both_frames(frames):
    m = torch.randn(1, merged_frames(frames), 3, 2)
    u = unmerge_frames(m, frames)
    assert u.shape == (1, frames, 3, 2)
    for f in range(frames):
        assert torch.equal(u[:, f], m[:, f // 2])


def test_merge_unmerge_is_exact_on_pair_constant_frames():
    base = torch.randn(1, 3, 6, 5)
    x = unmerge_frames(base, 5)  # frames 0=1, 2=3, 4 alone
    assert torch.equal(unmerge_frames(merge_frames(x), 5), x)
    flat = x.reshape(1, 5 * 6, 5)
    assert torch.equal(unmerge_frame_tokens(merge_frame_tokens(flat, 5), 5), flat)


def test_merged_positions_are_pair_means():
    assert merged_positions(4) == [0.5, 2.5]
    assert merged_positions(5) == [0.5, 2.5, 4.0]


def _block_inputs(cfg, frames_dup: bool):
    torch.manual_seed(0)
    s, d = cfg.tokens, cfg.hidden
    x = torch.randn(1, cfg.frames, s, d)
    if frames_dup:
        x = unmerge_frames(x[:, : merged_frames(cfg.frames)], cfg.frames)
    y = torch.randn(1, cfg.caption_len, d)
    bias = torch.zeros(1, 1, 1, cfg.caption_len)
    t0 = torch.randn(1, 6 * d)
    return x.reshape(1, cfg.frames * s, d), y, bias, t0


@pytest.mark.parametrize("frames", [4, 5])
def test_spatial_block_tdtm_exact_when_paired_frames_are_equal(frames):
    """Spatial and cross-attention act per frame, so merging identical frames changes nothing."""
    cfg = VideoDiTConfig(**{**SMALL.__dict__, "frames": frames})
    block = STBlock(cfg, temporal=False).eval()
    x, y, bias, t0 = _block_inputs(cfg, frames_dup=True)
    rope = (torch.ones(frames, 8), torch.zeros(frames, 8))
    full = block(x, y, bias, t0, VideoMerge(), rope)
    merged = block(x, y, bias, t0, VideoMerge(tdtm=True), rope)
    torch.testing.assert_close(merged, full, rtol=1e-5, atol=1e-5)


def test_odd_last_frame_is_untouched_by_spatial_tdtm():
    cfg = VideoDiTConfig(**{**SMALL.__dict__, "frames": 5})
    block = STBlock(cfg, temporal=False).eval()
    x, y, bias, t0 = _block_inputs(cfg, frames_dup=False)
    rope = (torch.ones(5, 8), torch.zeros(5, 8))
    full = block(x, y, bias, t0, VideoMerge(), rope).reshape(1, 5, cfg.tokens, -1)
    merged = block(x, y, bias, t0, VideoMerge(tdtm=True), rope).reshape(1, 5, cfg.tokens, -1)
    torch.testing.assert_close(merged[:, -1], full[:, -1], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(merged[:, 0], full[:, 0], atol=1e-4)


@pytest.mark.parametrize("frames", [4, 5])
def test_model_tdtm_runs_with_static_shapes(frames):
    cfg = VideoDiTConfig(**{**SMALL.__dict__, "frames": frames})
    model = VideoDiT(cfg).eval()
    torch.nn.init.normal_(model.final_linear.weight, std=0.1)
    x = torch.randn(2, 3, frames, cfg.size, cfg.size)
    args = (x, torch.rand(2), torch.randn(2, cfg.caption_len, cfg.caption_dim), torch.ones(2, cfg.caption_len))
    full = model(*args)
    merged = model(*args, merge=VideoMerge(tdtm=True))
    assert merged.shape == full.shape == x.shape
    assert torch.isfinite(merged).all()
    assert not torch.allclose(merged, full)


def test_tdtm_model_exports_without_dynamic_ops():
    model = VideoDiT(SMALL).eval()
    args = (torch.randn(1, 3, 4, 8, 8), torch.rand(1), torch.randn(1, 4, 8), torch.ones(1, 4))

    class Wrap(torch.nn.Module):
        def forward(self, *a):
            return model(*a, merge=VideoMerge(tdtm=True))

    ep = torch.export.export(Wrap(), args)
    targets = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert not any(k in t for t in targets for k in ("sort", "scatter_reduce", "nonzero", "masked_select", "aten.item", "_local_scalar_dense", "alias"))
