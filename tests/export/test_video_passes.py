"""The decompositions in export/passes/ that diffusers' video transformers need compute what the ops
they replace compute (eager, on tensors; the lowered graphs are checked by the Wan / LTX-Video
exports in tests/cli/test_video_transformer_export.py)."""

from __future__ import annotations

import pytest
import torch

from tomobile.export.passes import conv3d, expand_as_broadcast, mean, repeat_interleave, rms_norm, unbind

GEN = torch.Generator().manual_seed(0)


def _rand(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=GEN)


def test_patching_conv3d_is_patches_times_a_matrix():
    x, w, b = _rand(1, 5, 3, 8, 12), _rand(7, 5, 1, 2, 2), _rand(7)
    want = torch.nn.functional.conv3d(x, w, b, stride=(1, 2, 2))
    torch.testing.assert_close(conv3d.conv3d(x, w, b, stride=[1, 2, 2], padding=[0, 0, 0], dilation=[1, 1, 1]), want)
    other = conv3d.conv3d(x, _rand(7, 5, 3, 3, 3), None, stride=1, padding=1, dilation=1)  # not a patching one: kept
    assert other.shape == (1, 7, 3, 8, 12)


@pytest.mark.parametrize("dim,keepdim", [(-1, True), (-1, False), (1, True), (2, False)])
def test_mean(dim, keepdim):
    x = _rand(2, 2, 3, 5)
    torch.testing.assert_close(mean.mean(x, [dim], keepdim), x.mean(dim, keepdim=keepdim))


def test_means_xnnpack_takes_or_over_long_axes_stay():
    x = _rand(2, 2, 3, 9 + mean.SHORT_AXIS)
    assert mean.mean(x, [2, 3], True) is NotImplemented  # 4-D over the last two axes: XNNPACK's own mean
    assert mean.mean(x.transpose(2, 3), [2]) is NotImplemented  # a long axis that is not the last


def test_mean_of_a_pair_is_bit_exact():
    x = _rand(1, 4, 2, 6, 8)
    assert torch.equal(mean.mean(x, [2]), x.mean(2))


def test_rms_norm():
    x, w = _rand(2, 5, 8), _rand(8)
    want = torch.nn.functional.rms_norm(x, (8,), w, 1e-6)
    torch.testing.assert_close(rms_norm.rms_norm(x, [8], w, 1e-6), want)


def test_expand_grows_by_broadcast_and_leaves_the_rest():
    x = _rand(1, 3, 1, 4)
    assert torch.equal(expand_as_broadcast.expand(x, [1, 3, 2, 4]), x.expand(1, 3, 2, 4))
    assert torch.equal(expand_as_broadcast.expand(x, [2, 1, 3, -1, 4]), x.expand(2, 1, 3, 1, 4))
    assert expand_as_broadcast.expand(x, [1, 1, 3, 1, 4]) is NotImplemented  # no element added: a view later
    assert expand_as_broadcast.expand(torch.arange(3).reshape(3, 1), [3, 5]) is NotImplemented  # integers stay


def test_slicing_forms_of_unbind_and_repeat_interleave():
    x = _rand(2, 6, 3)
    assert all(torch.equal(a, b) for a, b in zip(unbind.unbind(x, 1), x.unbind(1), strict=True))
    assert torch.equal(repeat_interleave.repeat_interleave(x, 3, 0), x.repeat_interleave(3, 0))
    assert torch.equal(repeat_interleave.repeat_interleave(x, 2, -1), x.repeat_interleave(2, -1))
