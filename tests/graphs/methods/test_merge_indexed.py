"""The INDEXED spelling of the merge (ONNX Runtime's graph) gives the ARITHMETIC spelling's slots
exactly and its sums within rounding, in eager and in whole patched models."""

from __future__ import annotations

import pytest
import torch

from tomobile.graphs import MergeConfig
from tomobile.graphs.methods.merge import assignment, max_r, merge_wavg, one_hot_assignment
from tomobile.graphs.methods.merge_indexed import INDEXED
from tomobile.graphs.methods.ops import using_ops
from tomobile.graphs.methods.plan import Protected
from tomobile.graphs.models.registry import get_model


def _both(metric, r, class_token=False, distill_token=False, valid=None):
    """(one-hot M from the arithmetic graph, M rebuilt by the indexed sum of an identity)."""
    t = metric.shape[1]
    protected = Protected(class_token, distill_token)
    m = one_hot_assignment(assignment(metric, r, protected, valid), t - r, metric.dtype)
    fn = INDEXED.match(metric, r, protected, valid)
    eye = torch.eye(t).expand(metric.shape[0], t, t)  # (B, T, T0): source identity
    return m, fn.sum(eye), fn  # summing the identity's rows rebuilds M (B, T', T)


@pytest.mark.parametrize("t", [9, 16, 65, 197])
@pytest.mark.parametrize("class_token,distill_token", [(False, False), (True, False), (True, True)])
def test_indexed_slots_equal_the_one_hot_matrix(t, class_token, distill_token):
    gen = torch.Generator().manual_seed(t)
    metric = torch.randn(2, t, 16, generator=gen)
    x = torch.randn(2, t, 8, generator=gen)
    for r in sorted({1, max_r(t, Protected(class_token, distill_token)) // 2,
                        max_r(t, Protected(class_token, distill_token))} - {0}):
        m, rebuilt, fn = _both(metric, r, class_token, distill_token)
        assert torch.equal(rebuilt, m)
        torch.testing.assert_close(fn.sum(x), m @ x, atol=1e-6, rtol=0)
        size = torch.randint(1, 4, (2, t, 1), generator=gen).float()
        for got, want in zip(fn.wavg(x, size), merge_wavg(m, x, size), strict=True):
            torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)


def test_indexed_ties_and_zero_vectors_pick_the_same_slots():
    gen = torch.Generator().manual_seed(1)
    protos = torch.randn(3, 16, generator=gen)
    metric = protos[torch.randint(0, 3, (2, 40), generator=gen)]  # every score ties with many others
    metric[:, 5:9] = 0.0
    for r in (1, 7, max_r(40, Protected(True))):
        m, rebuilt, _ = _both(metric, r, class_token=True)
        assert torch.equal(rebuilt, m)


def test_indexed_padding_drops_orphans_like_the_one_hot_matrix():
    gen = torch.Generator().manual_seed(3)
    metric = torch.randn(1, 24, 8, generator=gen)
    valid = torch.ones(1, 24)
    valid[:, 15:] = 0.0
    for r in (2, 6, 11):
        m, rebuilt, _ = _both(metric, r, class_token=True, valid=valid)
        assert torch.equal(rebuilt, m)


@pytest.mark.parametrize("name,spec", [("vit-tiny", "tome:r=8"), ("deit-tiny", "tome:r=6"),
                                       ("clip-vit-tiny", "tome:r=4,schedule=decreasing"),
                                       ("minilm-l6", "tome:r=8")])
def test_patched_models_give_the_same_outputs_with_either_spelling(name, spec):
    wrapper = get_model(name).builder(MergeConfig.parse(spec)).parts["model"]
    inputs = wrapper.example_inputs(seed=0)
    with torch.no_grad():
        want = wrapper(*inputs)
        with using_ops(wrapper, INDEXED):
            got = wrapper(*inputs)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
