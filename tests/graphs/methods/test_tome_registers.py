"""ToMe with register tokens (DINOv2 with registers): the class token and R registers never merge.

ToMe has no register tokens. Its code protects the class token (A row 0 scores -inf) and a
distillation token (B column 0), and puts them first in the output: [A0, B0, kept A.., B..]. The
reference (tests/tome_reference.py) is that code with the rule generalized to the first 1 + R tokens, which alternate
A0, B0, A1, B1, ..: their A rows and B columns score -inf, and the output starts with them in their
own order, then the other kept A tokens (index order, as ToMe sorts them with a class token), then
the other B tokens. With R = 1 it is ToMe's distillation-token code. Ties are pinned as in
test_merge.py (lowest index, stable argsort, copies tie).
"""

from __future__ import annotations

import pytest
import torch
from tome_reference import reference_matching, reference_merge_wavg

from tomobile.graphs import MergeConfig, merge_plan
from tomobile.graphs.methods.merge import assignment, max_r, merge_wavg, one_hot_assignment
from tomobile.graphs.methods.merge_indexed import INDEXED
from tomobile.graphs.methods.plan import Protected
from tomobile.graphs.models.hf_models import _dinov2_layer
from tomobile.graphs.models.registry import get_model


def reference_merge(metric: torch.Tensor, r: int, registers: int):
    """The reference's merge(x, mode) for a class token and `registers` register tokens."""
    return reference_matching(metric, r, True, False, registers)[0]


def _check(metric: torch.Tensor, x: torch.Tensor, size: torch.Tensor, r: int, registers: int) -> None:
    t = metric.shape[1]
    merge = reference_merge(metric.clone(), r, registers)
    want_x, want_size = reference_merge_wavg(merge, x, size)
    # where each token went, read off the reference: merge token ids (exact small integers) by sum
    ids = torch.arange(t, dtype=torch.float32).reshape(1, t, 1).expand(metric.shape[0], t, 1)
    pos = assignment(metric, r, Protected(class_token=True, registers=registers))  # (B, T)
    m = one_hot_assignment(pos, t - r, x.dtype)
    torch.testing.assert_close(m @ ids, merge(ids, "sum"), atol=0, rtol=0)
    got_x, got_size = merge_wavg(m, x, size)
    torch.testing.assert_close(got_x, want_x, atol=1e-5, rtol=0)
    torch.testing.assert_close(got_size, want_size, atol=0, rtol=0)
    # ONNX Runtime's spelling: the same slots
    got_x, got_size = merge_wavg(INDEXED.match(metric, r, Protected(True, False, registers)), x, size)
    torch.testing.assert_close(got_x, want_x, atol=1e-5, rtol=0)
    torch.testing.assert_close(got_size, want_size, atol=0, rtol=0)
    # the protected tokens stay first, in their order, unmerged
    torch.testing.assert_close(got_x[:, :1 + registers], x[:, :1 + registers], atol=0, rtol=0)


@pytest.mark.parametrize("t", [12, 69, 70])
@pytest.mark.parametrize("registers", [1, 2, 4, 5])
def test_tome_with_registers_equals_the_generalized_reference(t, registers):
    gen = torch.Generator().manual_seed(t * 10 + registers)
    metric, x = torch.randn(3, t, 16, generator=gen), torch.randn(3, t, 8, generator=gen)
    size = torch.randint(1, 4, (3, t, 1), generator=gen).float()
    top = max_r(t, Protected(True, registers=registers))
    assert top == (t - 1 - registers) // 2
    for r in sorted({1, top // 2, top}):
        _check(metric, x, size, r, registers)


def test_registers_tie_to_the_lowest_index_like_tome():
    """Every token a copy of one of three: ties everywhere, the lowest index wins, and no copy
    merges into (or out of) a register token however strongly it matches one."""
    gen = torch.Generator().manual_seed(3)
    protos = torch.randn(3, 16, generator=gen)
    metric = protos[torch.randint(0, 3, (2, 45), generator=gen)]
    x = torch.randn(2, 45, 8, generator=gen)
    for r in (1, 9, max_r(45, Protected(True, registers=4))):
        _check(metric, x, torch.ones(2, 45, 1), r, 4)


def test_registers_with_degenerate_metrics():
    """All-zero and all-equal metrics (every score ties), and zero-norm tokens among real ones."""
    gen = torch.Generator().manual_seed(9)
    x, size = torch.randn(2, 33, 8, generator=gen), torch.randint(1, 3, (2, 33, 1), generator=gen).float()
    some_zero = torch.randn(2, 33, 16, generator=gen)
    some_zero[:, 3::5] = 0.0
    for metric in (torch.zeros(2, 33, 16), torch.ones(2, 33, 16), some_zero):
        for r in (1, max_r(33, Protected(True, registers=4))):
            _check(metric, x, size, r, 4)


def test_one_register_is_tomes_distillation_token_rule():
    gen = torch.Generator().manual_seed(5)
    metric = torch.randn(2, 40, 16, generator=gen)
    for r in (1, 10, max_r(40, Protected(True, True))):
        assert torch.equal(assignment(metric, r, Protected(True, registers=1)), assignment(metric, r, Protected(True, True)))


def test_dinov2_reg_tiny_under_tome_equals_the_reference_model():
    """The whole patched model (proportional attention, 8 merged per layer) against the model's own
    layers with the reference merge between attention and MLP."""
    wrapper = get_model("dinov2-reg-tiny").builder(MergeConfig.parse("tome:r=8")).parts["model"]
    model, plan = wrapper.model, merge_plan(wrapper.model)
    assert plan.get("registers") == 4 and plan.tokens[0] == 69 and plan.r[0] == 8
    (x,) = wrapper.example_inputs(seed=2)
    with torch.no_grad():
        ours = model(pixel_values=x)
        h, size = model.embeddings(x), None
        for i, layer in enumerate(model.encoder.layer):
            fns = _dinov2_layer(layer)
            h, keys, _ = fns.attend(h, None if size is None else size.log().reshape(size.shape[0], 1, 1, -1))
            if plan.r[i]:
                h, size = reference_merge_wavg(reference_merge(keys.mean(dim=2), plan.r[i], 4), h,
                                         torch.ones_like(h[..., :1]) if size is None else size)
            h = fns.feed_forward(h)
        h = model.layernorm(h)
    torch.testing.assert_close(ours.last_hidden_state, h, atol=2e-5, rtol=1e-5)
    assert ours.last_hidden_state.shape[1] == plan.tokens[-1]
    assert torch.equal(size[:, :5], torch.ones_like(size[:, :5])) and bool((size[:, 5:] > 1).any())
