"""The static merge op against ToMe's algorithm written the original way (argsort + scatter_reduce).

The reference below follows facebookresearch/ToMe's bipartite soft matching, eager only, with two
choices pinned so ties have one right answer: the best partner is the lowest-index maximum and
the ranking is a stable descending argsort (equal scores keep index order), and kept A tokens stay
in index order (ToMe sorts them when there is a class token). A third pin: similarities within
1e-5 of 1 are 1, so copies of a token tie instead of ranking by how the norm rounded (ToMe ranks
1.0 above 0.99999994; tomobile's `snap_duplicates` makes them equal on every backend).
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tome_reference import reference_matching, reference_merge_wavg

from tomobile.graphs.methods.merge import (
    assignment,
    bipartite_soft_matching,
    max_r,
    merge_sum,
    merge_wavg,
    one_hot_assignment,
    unmerge,
)
from tomobile.graphs.methods.plan import Protected

CLS = Protected(class_token=True)


def reference_positions(t: int, r: int, unm_idx, src_idx, dst_idx, distill_token: bool) -> torch.Tensor:
    """Output slot of each input token, read off the reference's index tensors."""
    bsz, ta, tb = unm_idx.shape[0], (t + 1) // 2, t // 2
    n_kept = ta - r
    pos = torch.empty(bsz, t, dtype=torch.float32)
    for bi in range(bsz):
        b_slot = [n_kept + j for j in range(tb)]
        kept = [n_kept if False else k for k in range(n_kept)]
        if distill_token:
            b_slot[0] = 1
            kept = [0] + [k + 1 for k in range(1, n_kept)]
        for j in range(tb):
            pos[bi, 2 * j + 1] = b_slot[j]
        for k, i in enumerate(unm_idx[bi, :, 0].tolist()):
            pos[bi, 2 * i] = kept[k]
        for i, j in zip(src_idx[bi, :, 0].tolist(), dst_idx[bi, :, 0].tolist()):
            pos[bi, 2 * i] = b_slot[j]
    return pos


def check_against_reference(metric, x, size, r, class_token=False, distill_token=False):
    t = metric.shape[1]
    merge, unm_idx, src_idx, dst_idx = reference_matching(metric.clone(), r, class_token, distill_token)
    want_pos = reference_positions(t, r, unm_idx, src_idx, dst_idx, distill_token)
    pos = assignment(metric, r, Protected(class_token, distill_token))
    assert torch.equal(pos, want_pos), "token assignment differs from the reference"
    m = one_hot_assignment(pos, t - r, x.dtype)
    got_x, got_size = merge_wavg(m, x, size)
    want_x, want_size = reference_merge_wavg(merge, x, size)
    assert got_x.shape == want_x.shape == (x.shape[0], t - r, x.shape[2])
    torch.testing.assert_close(got_x, want_x, atol=1e-5, rtol=0)
    torch.testing.assert_close(got_size, want_size, atol=1e-5, rtol=0)


@pytest.mark.parametrize("t", [9, 16, 65, 197])
@pytest.mark.parametrize("class_token,distill_token", [(False, False), (True, False), (True, True)])
def test_matches_reference_random(t, class_token, distill_token):
    gen = torch.Generator().manual_seed(t)
    metric = torch.randn(3, t, 16, generator=gen)
    x = torch.randn(3, t, 8, generator=gen)
    size = torch.randint(1, 4, (3, t, 1), generator=gen).float()
    top = max_r(t, Protected(class_token, distill_token))
    for r in sorted({0, 1, top // 2, top}):
        check_against_reference(metric, x, size, r, class_token, distill_token)


@pytest.mark.parametrize("class_token", [False, True])
def test_ties_from_duplicated_tokens(class_token):
    """Every token a copy of one of three: scores tie everywhere; lowest index must win."""
    gen = torch.Generator().manual_seed(1)
    protos = torch.randn(3, 16, generator=gen)
    choice = torch.randint(0, 3, (2, 40), generator=gen)
    metric = protos[choice]  # (2, 40, 16)
    x = torch.randn(2, 40, 8, generator=gen)
    for r in (1, 7, max_r(40, Protected(class_token))):
        check_against_reference(metric, x, torch.ones(2, 40, 1), r, class_token)


def test_copies_tie_however_their_norms_round():
    """Copies of three random tokens, each copy scaled by its own power-free factor: the cosines
    are mathematically unchanged, only their rounding moves (1.0 vs 0.99999994). The slots must not
    move: copies score exactly 1 (snap_duplicates), ties go to the lowest index."""
    gen = torch.Generator().manual_seed(7)
    protos = torch.randn(3, 16, generator=gen)
    metric = protos[torch.randint(0, 3, (4, 41), generator=gen)]  # (4, 41, 16)
    scaled = metric * torch.empty(4, 41, 1).uniform_(0.3, 3.0, generator=gen)
    raw = [(a / a.norm(dim=-1, keepdim=True))[:, 0::2] @ (a / a.norm(dim=-1, keepdim=True))[:, 1::2].transpose(1, 2)
           for a in (metric, scaled)]
    assert not torch.equal(raw[0], raw[1])  # the rounding really differs
    for r in (1, 9, 20):
        assert torch.equal(assignment(metric, r, CLS), assignment(scaled, r, CLS))


def test_all_identical_tokens_pick_lowest_indices():
    metric = torch.ones(1, 10, 4)
    pos = assignment(metric, 2)
    # A = 0,2,4,6,8 all tie: the first two (tokens 0 and 2) merge into B's lowest index (token 1 -> slot 3).
    assert pos.tolist() == [[3.0, 3.0, 3.0, 4.0, 0.0, 5.0, 1.0, 6.0, 2.0, 7.0]]


def test_zero_vectors_have_no_nan_and_match_reference():
    gen = torch.Generator().manual_seed(2)
    metric = torch.randn(2, 21, 8, generator=gen)
    metric[:, 3] = 0.0
    metric[:, 4] = 0.0
    metric[:, 10:14] = 0.0
    x = torch.randn(2, 21, 8, generator=gen)
    pos = assignment(metric, 10, CLS)
    assert torch.isfinite(pos).all()
    check_against_reference(metric, x, torch.ones(2, 21, 1), 10, class_token=True)


def test_class_and_distillation_tokens_are_protected():
    gen = torch.Generator().manual_seed(3)
    metric = torch.randn(4, 66, 8, generator=gen)
    metric[:, 0] = metric[:, 1]  # class token identical to the distillation token: still kept apart
    r = max_r(66, Protected(True, True))
    pos = assignment(metric, r, Protected(True, True))
    m = one_hot_assignment(pos, 66 - r, torch.float32)
    assert (pos[:, 0] == 0).all() and (pos[:, 1] == 1).all()
    assert (m[:, 0].sum(-1) == 1).all() and (m[:, 1].sum(-1) == 1).all()  # nothing joins them


@settings(max_examples=40, deadline=None)
@given(t=st.integers(3, 50), seed=st.integers(0, 2**16), frac=st.floats(0, 1), cls=st.booleans(),
       dup=st.booleans())
def test_property_matches_reference(t, seed, frac, cls, dup):
    gen = torch.Generator().manual_seed(seed)
    metric = torch.randn(2, t, 6, generator=gen)
    if dup:
        metric = metric.round()  # coarse values: many exact ties
    r = int(frac * max_r(t, Protected(cls)))
    check_against_reference(metric, torch.randn(2, t, 5, generator=gen), torch.ones(2, t, 1), r, cls)


def test_r_out_of_range_is_rejected():
    with pytest.raises(ValueError, match="allowed 0..32"):
        assignment(torch.randn(1, 65, 4), 33, CLS)


def test_unmerge_copies_merged_value_to_every_source():
    gen = torch.Generator().manual_seed(4)
    metric = torch.randn(1, 12, 4, generator=gen)
    x = torch.randn(1, 12, 3, generator=gen)
    m = bipartite_soft_matching(metric, 5)
    merged, size = merge_wavg(m, x, torch.ones(1, 12, 1))
    back = unmerge(m, merged)  # (1, 12, 3)
    pos = assignment(metric, 5).long()[0]
    for t in range(12):
        torch.testing.assert_close(back[0, t], merged[0, pos[t]])
    assert size.sum() == 12


def test_source_tracking_composes_over_layers():
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(1, 17, 4, generator=gen)
    source = torch.eye(17).unsqueeze(0)
    size = torch.ones(1, 17, 1)
    for r in (4, 3, 2):
        m = bipartite_soft_matching(x, r, CLS)
        x, size = merge_wavg(m, x, size)
        source = merge_sum(m, source)
    assert source.shape == (1, 17 - 9, 17)
    torch.testing.assert_close(source.sum(-1, keepdim=True), size)  # each slot holds `size` inputs
    assert torch.equal(source.sum(1), torch.ones(1, 17))  # every input lands in exactly one slot
    assert source[0, 0, 0] == 1 and source[0, 0].sum() == 1  # class token alone in slot 0


def _pad_batch():
    gen = torch.Generator().manual_seed(6)
    metric = torch.randn(2, 24, 8, generator=gen)
    valid = torch.ones(2, 24)
    valid[0, 15:] = 0.0
    valid[1, 22:] = 0.0
    return metric, valid


def test_padding_never_merges_into_real_tokens():
    metric, valid = _pad_batch()
    metric[:, 15:] = metric[:, 2:11].mean(1, keepdim=True)  # padding looks like real tokens
    for r in (1, 6, 11):
        pos = assignment(metric, r, CLS, valid=valid)
        m = one_hot_assignment(pos, 24 - r, torch.float32)  # (2, T', T)
        real = m @ valid.unsqueeze(-1)
        pad = m @ (1 - valid).unsqueeze(-1)
        assert ((real == 0) | (pad == 0)).all(), f"a slot mixes padding and real tokens at r={r}"


def test_real_token_merges_do_not_depend_on_padding_content():
    metric, valid = _pad_batch()
    other = metric.clone()
    other[0, 15:] = torch.randn(9, 8)
    other[1, 22:] = 5.0
    for r in (2, 8):
        a = assignment(metric, r, CLS, valid=valid)
        b = assignment(other, r, CLS, valid=valid)
        assert torch.equal(a[valid.bool()], b[valid.bool()])
