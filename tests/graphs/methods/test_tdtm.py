"""TDTM: frame-pair averaging and its copy-back, alone and inside the VideoDiT blocks, in both modes.

The expected values are written from On-device Sora's semantics (Modded_Open_Sora merge.py and the
STDiT3 blocks): an odd last frame is dropped on merge and refilled from the last pair on unmerge,
and temporal RoPE sees the merged sequence as a clip of its own (positions 0..T'-1).
"""

import dataclasses

import pytest
import torch

from tomobile.graphs.methods.tdtm import (
    TdtmOdd,
    TdtmPositions,
    merge_frame_tokens,
    merge_frames,
    merged_frames,
    merged_positions,
    unmerge_frame_tokens,
    unmerge_frames,
)
from tomobile.graphs.models.video_dit import STBlock, VideoDiT, VideoDiTConfig, VideoMerge, rope_tables

SMALL = VideoDiTConfig(frames=4, size=8, patch=2, hidden=16, depth=1, heads=2, caption_len=4, caption_dim=8,
                      pooled_caption=True, frame_pos=True, x0_prediction=True)
ORIG, KEEP = TdtmOdd.ORIGINAL, TdtmOdd.KEEP
# T where On-device Sora's unmerge returns the wrong frame count (it tests the merged count's parity).
ORIGINAL_MISCOUNTS = [5, 6, 9, 10, 13, 14]


def test_defaults_are_the_originals():
    assert VideoDiTConfig().tdtm_positions is TdtmPositions.ORIGINAL
    assert VideoDiTConfig().tdtm_odd is TdtmOdd.ORIGINAL
    assert merged_frames(5) == 2 and merged_positions(4) == [0.0, 1.0]
    x = torch.randn(1, 5, 2, 3)
    assert merge_frames(x).shape[1] == 2 and unmerge_frames(merge_frames(x), 5).shape[1] == 5


def test_config_takes_strings_and_rejects_other_values():
    cfg = VideoDiTConfig(tdtm_positions="midpoint", tdtm_odd="keep")
    assert cfg.tdtm_positions is TdtmPositions.MIDPOINT and cfg.tdtm_odd is TdtmOdd.KEEP
    with pytest.raises(ValueError):
        VideoDiTConfig(tdtm_positions="centre")


@pytest.mark.parametrize("odd", [ORIG, KEEP])
@pytest.mark.parametrize("frames", [2, 3, 4, 5, 6, 7, 8, 9, 10, 13, 14])
def test_merge_averages_pairs(frames, odd):
    x = torch.randn(2, frames, 3, 4)
    m = merge_frames(x, odd)
    pairs = frames // 2
    extra = 1 if (odd is KEEP and frames % 2) else 0
    assert m.shape == (2, pairs + extra, 3, 4) and merged_frames(frames, odd) == pairs + extra
    for i in range(pairs):
        torch.testing.assert_close(m[:, i], (x[:, 2 * i] + x[:, 2 * i + 1]) / 2)
    if extra:
        assert torch.equal(m[:, -1], x[:, -1])


@pytest.mark.parametrize("odd", [ORIG, KEEP])
@pytest.mark.parametrize("frames", ORIGINAL_MISCOUNTS + [2, 3, 4, 7, 8])
def test_unmerge_gives_every_frame_count_back(frames, odd):
    x = torch.randn(1, frames, 3, 2)
    assert unmerge_frames(merge_frames(x, odd), frames, odd).shape == x.shape
    flat = x.reshape(1, frames * 3, 2)
    assert unmerge_frame_tokens(merge_frame_tokens(flat, frames, odd), frames, odd).shape == flat.shape


@pytest.mark.parametrize("frames", [3, 5, 7, 9])
def test_original_odd_frame_is_dropped_and_refilled_with_the_last_pair_average(frames):
    x = torch.randn(2, frames, 3, 4)
    u = unmerge_frames(merge_frames(x, ORIG), frames, ORIG)
    for f in range(frames - 1):
        pair = f // 2
        torch.testing.assert_close(u[:, f], (x[:, 2 * pair] + x[:, 2 * pair + 1]) / 2)
    torch.testing.assert_close(u[:, -1], (x[:, -3] + x[:, -2]) / 2)  # the last pair's average
    # The dropped frame's own values reach nothing.
    y = x.clone()
    y[:, -1] = 100.0
    assert torch.equal(merge_frames(y, ORIG), merge_frames(x, ORIG))


@pytest.mark.parametrize("frames", [3, 5, 7])
def test_keep_odd_frame_is_its_own_merged_frame(frames):
    x = torch.randn(1, frames, 3, 2)
    u = unmerge_frames(merge_frames(x, KEEP), frames, KEEP)
    assert torch.equal(u[:, -1], x[:, -1])
    torch.testing.assert_close(u[:, 0], (x[:, 0] + x[:, 1]) / 2)


def test_single_frame_cannot_drop_its_only_frame():
    with pytest.raises(ValueError, match="at least 2 frames"):
        merged_frames(1, ORIG)
    x = torch.randn(1, 1, 2, 2)
    assert torch.equal(unmerge_frames(merge_frames(x, KEEP), 1, KEEP), x)


@pytest.mark.parametrize("frames,odd,positions,expected", [
    (8, ORIG, TdtmPositions.ORIGINAL, [0.0, 1.0, 2.0, 3.0]),
    (8, ORIG, TdtmPositions.MIDPOINT, [0.5, 2.5, 4.5, 6.5]),
    (5, ORIG, TdtmPositions.ORIGINAL, [0.0, 1.0]),
    (5, KEEP, TdtmPositions.ORIGINAL, [0.0, 1.0, 2.0]),
    (5, ORIG, TdtmPositions.MIDPOINT, [0.5, 2.5]),
    (5, KEEP, TdtmPositions.MIDPOINT, [0.5, 2.5, 4.0]),
])
def test_merged_positions(frames, odd, positions, expected):
    assert merged_positions(frames, positions, odd) == expected


def _temporal_pair(frames: int, positions: TdtmPositions, odd: TdtmOdd = ORIG):
    """A VideoDiT (for its TDTM RoPE tables) and one temporal block with non-zero weights."""
    cfg = dataclasses.replace(SMALL, frames=frames, tdtm_positions=positions, tdtm_odd=odd)
    torch.manual_seed(0)
    model = VideoDiT(cfg).eval()
    block = model.temporal_blocks[0]
    for p in block.parameters():
        torch.nn.init.normal_(p, std=0.3)
    return model, block


def _block_inputs(cfg, x_frames: torch.Tensor):
    """x_frames (1, T, S, D) -> the block's flat inputs."""
    torch.manual_seed(1)
    d = cfg.hidden
    y = torch.randn(1, cfg.caption_len, d)
    bias = torch.zeros(1, 1, 1, cfg.caption_len)
    t0 = torch.randn(1, 6 * d)
    return x_frames.reshape(1, -1, d), y, bias, t0


@pytest.mark.parametrize("frames", [4, 8])
def test_original_positions_attend_over_the_merged_clip_as_a_clip(frames):
    """On-device Sora: TDTM temporal attention = attention over the T' merged frames with RoPE at
    0..T'-1, as if they were a T'-frame clip. With pair-equal frames the merge is exact, so the
    merged T-frame block equals an unmerged T'-frame block (same weights) copied to both frames;
    midpoint positions (2i + 0.5) give another output."""
    half = frames // 2
    base = torch.randn(1, half, SMALL.tokens, SMALL.hidden)
    out = {}
    for positions in TdtmPositions:
        model, block = _temporal_pair(frames, positions)  # the same weights for both
        x, y, bias, t0 = _block_inputs(model.cfg, base.repeat_interleave(2, dim=1))  # frames 2i == 2i+1
        rope = (model.rope_cos_tdtm, model.rope_sin_tdtm)
        out[positions] = block(x, y, bias, t0, VideoMerge(tdtm=True), rope).reshape(1, frames, SMALL.tokens, -1)
    short = STBlock(dataclasses.replace(model.cfg, frames=half), temporal=True).eval()
    short.load_state_dict(block.state_dict())
    xs, *_ = _block_inputs(model.cfg, base)
    clip_rope = rope_tables([float(i) for i in range(half)], SMALL.hidden // SMALL.heads)  # a T'-frame clip
    ref = short(xs, y, bias, t0, VideoMerge(), clip_rope).reshape(1, half, SMALL.tokens, -1)
    torch.testing.assert_close(out[TdtmPositions.ORIGINAL], ref.repeat_interleave(2, dim=1), rtol=1e-5, atol=1e-5)
    gap = (out[TdtmPositions.MIDPOINT] - out[TdtmPositions.ORIGINAL]).abs().max().item()
    assert gap > 1e-2


def test_original_odd_frame_takes_the_last_pairs_attention_in_the_block():
    """T = 5, frames 2, 3 and 4 equal: every per-token step gives frame 4 what frame 3 gets, so only
    attention can tell them apart. original: frame 4 receives the last pair's attention output, so
    its output equals frame 3's; keep: frame 4 is a query of its own at its own position, and differs."""
    outs = {}
    for odd in (ORIG, KEEP):
        model, block = _temporal_pair(5, TdtmPositions.ORIGINAL, odd)
        torch.manual_seed(2)
        f = torch.randn(1, 3, SMALL.tokens, SMALL.hidden)
        x_frames = torch.cat([f[:, :1], f[:, 1:2], f[:, 2:3].expand(1, 3, -1, -1)], dim=1)  # (1, 5, S, D)
        x, y, bias, t0 = _block_inputs(model.cfg, x_frames)
        rope = (model.rope_cos_tdtm, model.rope_sin_tdtm)
        outs[odd] = block(x, y, bias, t0, VideoMerge(tdtm=True), rope).reshape(1, 5, SMALL.tokens, -1)
    torch.testing.assert_close(outs[ORIG][:, 4], outs[ORIG][:, 3], rtol=1e-5, atol=1e-5)
    assert (outs[KEEP][:, 4] - outs[KEEP][:, 3]).abs().max().item() > 1e-2


@pytest.mark.parametrize("frames", [4, 5])
def test_spatial_block_tdtm_exact_when_paired_frames_are_equal(frames):
    """Spatial and cross-attention act per frame, so merging identical frames changes nothing
    (T = 5, keep: the odd frame is its own merged frame)."""
    cfg = dataclasses.replace(SMALL, frames=frames, tdtm_odd=KEEP)
    block = STBlock(cfg, temporal=False).eval()
    torch.manual_seed(0)
    x = unmerge_frames(torch.randn(1, merged_frames(frames, KEEP), cfg.tokens, cfg.hidden), frames, KEEP)
    x, y, bias, t0 = _block_inputs(cfg, x)
    rope = (torch.ones(frames, 8), torch.zeros(frames, 8))
    full = block(x, y, bias, t0, VideoMerge(), rope)
    merged = block(x, y, bias, t0, VideoMerge(tdtm=True), rope)
    torch.testing.assert_close(merged, full, rtol=1e-5, atol=1e-5)


def test_keep_odd_last_frame_is_untouched_by_spatial_tdtm():
    cfg = dataclasses.replace(SMALL, frames=5, tdtm_odd=KEEP)
    block = STBlock(cfg, temporal=False).eval()
    x, y, bias, t0 = _block_inputs(cfg, torch.randn(1, 5, cfg.tokens, cfg.hidden))
    rope = (torch.ones(5, 8), torch.zeros(5, 8))
    full = block(x, y, bias, t0, VideoMerge(), rope).reshape(1, 5, cfg.tokens, -1)
    merged = block(x, y, bias, t0, VideoMerge(tdtm=True), rope).reshape(1, 5, cfg.tokens, -1)
    torch.testing.assert_close(merged[:, -1], full[:, -1], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(merged[:, 0], full[:, 0], atol=1e-4)


@pytest.mark.parametrize("odd", [ORIG, KEEP])
@pytest.mark.parametrize("frames", [4, 5])
def test_model_tdtm_runs_with_static_shapes(frames, odd):
    cfg = dataclasses.replace(SMALL, frames=frames, tdtm_odd=odd)
    model = VideoDiT(cfg).eval()
    torch.nn.init.normal_(model.final_linear.weight, std=0.1)
    x = torch.randn(2, 3, frames, cfg.size, cfg.size)
    args = (x, torch.rand(2), torch.randn(2, cfg.caption_len, cfg.caption_dim), torch.ones(2, cfg.caption_len))
    full = model(*args)
    merged = model(*args, merge=VideoMerge(tdtm=True))
    assert merged.shape == full.shape == x.shape
    assert torch.isfinite(merged).all()
    assert not torch.allclose(merged, full)


@pytest.mark.parametrize("positions", list(TdtmPositions))
@pytest.mark.parametrize("frames,odd", [(4, ORIG), (5, ORIG), (5, KEEP), (3, ORIG)])
def test_tdtm_model_exports_without_dynamic_ops(frames, odd, positions):
    cfg = dataclasses.replace(SMALL, frames=frames, tdtm_odd=odd, tdtm_positions=positions)
    model = VideoDiT(cfg).eval()
    args = (torch.randn(1, 3, frames, 8, 8), torch.rand(1), torch.randn(1, 4, 8), torch.ones(1, 4))

    class Wrap(torch.nn.Module):
        def forward(self, *a):
            return model(*a, merge=VideoMerge(tdtm=True))

    ep = torch.export.export(Wrap(), args)
    targets = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert not any(k in t for t in targets for k in ("sort", "scatter_reduce", "nonzero", "masked_select", "aten.item", "_local_scalar_dense", "alias"))
