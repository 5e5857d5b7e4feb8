"""export/passes/drop_identities.py: identity clones and whole-axis slices go, copies that change
the layout stay (a reshape's clone of a permuted tensor: dropping it broke the next retrace)."""

import torch

from tomobile.export.passes.drop_identities import drop_identities


class CacheAndReshape(torch.nn.Module):
    def forward(self, x):  # x (1, 2, 2, 3, 4): two frames
        cache = x[:, :, -2:].clone()  # the whole time axis: x itself
        rows = x.permute(0, 1, 3, 2, 4).reshape(1, 2, 6, 4)  # a layout-changing copy, then a view
        return cache * 2, rows + 1


def _targets(program) -> list:
    return [n.target for n in program.graph.nodes if n.op == "call_function"]


def test_identity_copies_go_and_layout_copies_stay():
    x = torch.randn(1, 2, 2, 3, 4)
    program = torch.export.export(CacheAndReshape(), (x,), strict=False).run_decompositions({})  # as the passes run
    aten = torch.ops.aten
    clones = _targets(program).count(aten.clone.default)
    assert clones == 2 and aten.slice.Tensor in _targets(program)  # the cache's clone and the reshape's
    dropped = drop_identities(program)
    assert aten.slice.Tensor not in _targets(dropped)
    assert _targets(dropped).count(aten.clone.default) == clones - 1  # the reshape's copy stays
    retraced = dropped.run_decompositions({})  # failed with the copy dropped: a view of a permute
    for got, want in zip(retraced.module()(x), CacheAndReshape()(x), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
