"""The merge spelling is an argument: ARITHMETIC and INDEXED, passed explicitly in eager (no context,
no model state), pick the same slots, and eager computes what the graph traced with the same ops
computes (the norm: once eager took torch's norm while the ARITHMETIC graph took sqrt of a matmul)."""

from __future__ import annotations

import pytest
import torch

from tomobile.graphs import MergeConfig
from tomobile.graphs.methods.merge import ARITHMETIC, assignment, matching_scores, max_r, one_hot_assignment
from tomobile.graphs.methods.merge_indexed import INDEXED
from tomobile.graphs.methods.ops import OPS_ATTR, merge_ops_of, using_ops
from tomobile.graphs.methods.plan import Protected
from tomobile.graphs.models.registry import get_model

PROTECTED = [Protected(), Protected(True), Protected(True, True), Protected(True, registers=4)]


def _metrics(t: int) -> list[torch.Tensor]:
    """Random scores, and copies of three tokens (every score ties with many others)."""
    gen = torch.Generator().manual_seed(t)
    protos = torch.randn(3, 16, generator=gen)
    return [torch.randn(2, t, 16, generator=gen), protos[torch.randint(0, 3, (2, t), generator=gen)]]


@pytest.mark.parametrize("protected", PROTECTED, ids=lambda p: f"p{p.count}d{int(p.distill_token)}")
@pytest.mark.parametrize("t", [17, 65])
def test_both_spellings_passed_explicitly_pick_the_same_slots(t, protected):
    for metric in _metrics(t):
        for r in sorted({1, max_r(t, protected) // 2, max_r(t, protected)} - {0}):
            pos = assignment(metric, r, protected, ops=ARITHMETIC)
            assert torch.equal(assignment(metric, r, protected, ops=INDEXED), pos)  # the algorithm, INDEXED primitives
            eye = torch.eye(t).expand(2, t, t)  # (B, T, T0)
            want = one_hot_assignment(pos, t - r, torch.float32, ARITHMETIC)
            assert torch.equal(ARITHMETIC.match(metric, r, protected), want)
            assert torch.equal(INDEXED.match(metric, r, protected).sum(eye), want)  # gathers: the same slots


class _Norm(torch.nn.Module):
    def __init__(self, ops) -> None:
        super().__init__()
        self.ops = ops

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.ops.norm(x), matching_scores(x, Protected(True), None, self.ops)


@pytest.mark.parametrize("ops,op", [(ARITHMETIC, "aten.sqrt.default"), (INDEXED, "aten.linalg_vector_norm.default")])
def test_eager_equals_the_exported_graph_at_the_norm(ops, op):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 65, 64, generator=gen) * 3.0
    with torch.no_grad():
        program = torch.export.export(_Norm(ops.for_export()), (x,), strict=False)
        exported = program.module()(x)
        eager = _Norm(ops)(x)
    assert op in {str(n.target) for n in program.graph.nodes}  # the graph holds this spelling's norm
    for got, want in zip(exported, eager, strict=True):
        assert torch.equal(got, want)
    # not vacuous: the two spellings of the norm round differently on these inputs
    assert not torch.equal(ARITHMETIC.norm(x), INDEXED.norm(x))


def test_using_ops_sets_every_patched_module_and_restores_it():
    wrapper = get_model("siglip-tiny").builder(MergeConfig.parse("tome:r=4")).parts["model"]
    patched = [m for m in wrapper.modules() if hasattr(m, OPS_ATTR)]
    assert len(patched) == 2  # the encoder's patch and the attention-pool head
    (x,) = wrapper.example_inputs(seed=0)
    with torch.no_grad():
        before = wrapper(x)
        with using_ops(wrapper, INDEXED.for_export()):
            assert all(merge_ops_of(m) == INDEXED.for_export() for m in patched)
            traced_spelling = wrapper(x)
        assert all(merge_ops_of(m) is ARITHMETIC for m in patched)
        assert all(torch.equal(a, b) for a, b in zip(wrapper(x), before, strict=True))
    # the static pool head (traced spelling) equals the original head to rounding, and is not it bit for bit
    torch.testing.assert_close(traced_spelling[0], before[0], atol=1e-5, rtol=1e-5)
    assert not torch.equal(traced_spelling[0], before[0])
