"""Static SD-style spatial ToMe: assignment structure, exactness cases, export-safe ops."""

import pytest
import torch

from tomobile.graphs.methods.merge import ARITHMETIC
from tomobile.graphs.methods.spatial_merge import (
    SpatialMergeConfig,
    SpatialOps,
    destination_indices,
    merge_attend_unmerge,
    merge_count,
    merge_fns,
    merge_mean,
    slot_positions,
    spatial_assignment,
)
from tomobile.graphs.models.video_dit import VideoDiT, VideoDiTConfig, VideoMerge

SMALL = VideoDiTConfig(frames=2, size=16, patch=2, hidden=16, depth=1, heads=2, caption_len=4, caption_dim=8,
                      pooled_caption=True, frame_pos=True, x0_prediction=True)


@pytest.mark.parametrize("ratio,expected", [(0.0, 0), (0.25, 16), (0.5, 32), (0.75, 48), (1.0, 48)])
def test_merge_count(ratio, expected):
    assert merge_count(8, 8, SpatialMergeConfig(ratio)) == expected


@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.75])
def test_assignment_is_one_hot_with_destinations_kept(ratio):
    cfg = SpatialMergeConfig(ratio)
    x = torch.randn(3, 64, 8)
    m = spatial_assignment(x, 8, 8, cfg)
    assert m.shape == (3, 64 - merge_count(8, 8, cfg), 64)
    assert torch.equal(m.sum(dim=1), torch.ones(3, 64))  # every token lands in exactly one slot
    dst = destination_indices(8, 8, cfg)
    assert torch.equal(m[:, :, dst].sum(dim=1), torch.ones(3, len(dst)))
    assert (m[:, :, dst].sum(dim=2) <= 1).all()  # no two destinations share a slot


def test_ratio_zero_is_exactly_unmerged():
    x = torch.randn(2, 64, 8)
    attend = torch.nn.Linear(8, 8)
    assert torch.equal(merge_attend_unmerge(x, 8, 8, SpatialMergeConfig(0.0), attend), attend(x))
    model = VideoDiT(SMALL).eval()
    torch.nn.init.normal_(model.final_linear.weight, std=0.1)
    args = (torch.randn(1, 3, 2, 16, 16), torch.rand(1), torch.randn(1, 4, 8), torch.ones(1, 4))
    assert torch.equal(model(*args, merge=VideoMerge(spatial=SpatialMergeConfig(0.0))), model(*args))


def test_cell_constant_tokens_reconstruct_exactly_at_max_ratio():
    cells = torch.randn(1, 4, 4, 8)  # (N, Hc, Wc, C): one vector per 2x2 cell
    x = cells.repeat_interleave(2, 1).repeat_interleave(2, 2).reshape(1, 64, 8)  # (N, 64, C)
    cfg = SpatialMergeConfig(0.75)
    m = spatial_assignment(x, 8, 8, cfg)
    assert m.shape[1] == 16
    torch.testing.assert_close(merge_attend_unmerge(x, 8, 8, cfg, lambda t: t), x)
    torch.testing.assert_close(merge_mean(m, x).sum(), cells.sum() * 1.0)


def test_seeded_offset_is_deterministic_and_inside_cell():
    a, b = SpatialMergeConfig.seeded(0.5, 7), SpatialMergeConfig.seeded(0.5, 7)
    assert a == b and 0 <= a.oy < 2 and 0 <= a.ox < 2


def test_ties_break_to_lowest_index():
    x = torch.ones(1, 16, 4)  # all similarities equal
    m = spatial_assignment(x, 4, 4, SpatialMergeConfig(0.25))  # r = 4 of 12 sources
    src = [i for i in range(16) if i not in destination_indices(4, 4, SpatialMergeConfig(0.25))]
    merged_src = [i for i in src if m[0, :, i].argmax() >= 12 - 4]
    assert merged_src == src[:4]
    assert (m[0, 8, merged_src] == 1).all()  # all join destination 0 (slot n_kept + 0)


def test_exports_without_sort_or_scatter_reduce():
    class Op(torch.nn.Module):
        def forward(self, x):
            return merge_attend_unmerge(x, 8, 8, SpatialMergeConfig(0.5), lambda t: t * 2)

    ep = torch.export.export(Op(), (torch.randn(2, 64, 8),))
    targets = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert not any(k in t for t in targets for k in ("sort", "scatter_reduce", "nonzero", "aten.item", "_local_scalar_dense", "bitwise", "alias"))


def _tied(seed: int) -> torch.Tensor:
    """(2, 64, 8) tokens drawn from 3 vectors: every similarity is one of a few exact ties."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(3, 8, generator=g)
    return base[torch.randint(0, 3, (2, 64), generator=g)]


@pytest.mark.parametrize("make", [lambda s: torch.randn(2, 64, 8, generator=torch.Generator().manual_seed(s)),
                                  _tied, lambda s: torch.ones(2, 64, 8)], ids=["random", "ties", "all-equal"])
@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.75])
def test_indexed_spelling_gives_the_one_hot_slots_and_outputs(make, ratio):
    cfg = SpatialMergeConfig(ratio, oy=1, ox=0)
    dst, r = destination_indices(8, 8, cfg), merge_count(8, 8, cfg)
    for seed in range(3):
        x = make(seed)
        one_hot = slot_positions(x, dst, r, SpatialOps.ONE_HOT)
        assert torch.equal(slot_positions(x, dst, r, SpatialOps.INDEXED), one_hot)
        attend = torch.nn.Linear(8, 8)
        ref = merge_attend_unmerge(x, 8, 8, cfg, attend)
        torch.testing.assert_close(merge_attend_unmerge(x, 8, 8, cfg, attend, SpatialOps.INDEXED), ref,
                                   atol=1e-5, rtol=0)
        merge, _ = merge_fns(x, dst, r, SpatialOps.INDEXED)
        torch.testing.assert_close(merge(x), merge_mean(spatial_assignment(x, 8, 8, cfg), x), atol=1e-5, rtol=0)


def test_indexed_spelling_exports_as_topk_scatter_add_and_gather():
    class Op(torch.nn.Module):
        def forward(self, x):
            return merge_attend_unmerge(x, 8, 8, SpatialMergeConfig(0.5), lambda t: t * 2, SpatialOps.INDEXED,
                                        ARITHMETIC.for_export())  # as a graph traced for a file

    ep = torch.export.export(Op(), (torch.randn(2, 64, 8),))
    targets = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert {"aten.topk.default", "aten.scatter_add.default", "aten.gather.default"} <= targets
    assert not any(k in t for t in targets for k in ("sort", "scatter_reduce", "nonzero", "_local_scalar_dense"))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_clamp_ties_exactly_the_scores_snap_sets_to_one(dtype):
    from tomobile.graphs.methods.merge import SAME_DELTA, snap_duplicates
    from tomobile.graphs.methods.spatial_merge import clamp_duplicates

    t = torch.tensor(1.0 - max(SAME_DELTA, 4.0 * torch.finfo(dtype).eps), dtype=dtype)
    up = torch.nextafter(t, torch.tensor(2.0, dtype=dtype))
    scores = torch.stack([torch.nextafter(t, torch.tensor(0.0, dtype=dtype)), t, up, torch.tensor(1.0, dtype=dtype),
                          torch.nextafter(torch.tensor(1.0, dtype=dtype), torch.tensor(2.0, dtype=dtype)),
                          torch.tensor(0.5, dtype=dtype)])
    snapped, clamped = snap_duplicates(scores), clamp_duplicates(scores)
    assert torch.equal(snapped == 1.0, clamped == up)  # the same scores tie ...
    assert torch.equal(scores[snapped != 1.0], clamped[clamped != up])  # ... and the others are untouched
