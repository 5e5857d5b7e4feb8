"""A patching 3-D convolution as patches times a matrix: XNNPACK has no 3-D convolution (Wan's patch
embedding is one, kernel = stride = (1, 2, 2))."""

from __future__ import annotations

import torch


def conv3d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups: int = 1):
    """A 3-D convolution whose kernel is its stride, one frame deep, without padding, as a linear
    over patches; every view here has at most 4 axes (XNNPACK takes 6). Other 3-D convolutions stay."""
    o, c, kt, kh, kw = weight.shape
    stride, padding, dilation = ([v] * 3 if isinstance(v, int) else list(v) for v in (stride, padding, dilation))
    patching = stride == [kt, kh, kw] and not any(padding) and dilation == [1, 1, 1] and groups == 1
    if not patching or kt != 1:
        return torch.ops.aten.convolution(x, weight, bias, stride, padding, dilation, False, [0, 0, 0], groups)
    b, _, t, h, w = x.shape
    hp, wp = h // kh, w // kw
    rows = x.reshape(b * c * t * hp, kh, wp, kw).permute(0, 2, 1, 3)  # (B*C*T*H', W', kh, kw)
    cells = rows.reshape(b, c, t * hp * wp, kh * kw).permute(0, 2, 1, 3)  # (B, N, C, kh*kw)
    y = torch.nn.functional.linear(cells.reshape(b, t * hp * wp, c * kh * kw), weight.reshape(o, -1), bias)  # (B, N, O)
    return y.permute(0, 2, 1).reshape(b, o, t, hp, wp)  # (B, O, T, H', W')


PATCHING_CONV3D_AS_LINEAR = {torch.ops.aten.conv3d.default: conv3d}  # a decomposition table entry
