"""SigLIP's attention-pool head: the static export spelling (graphs/models/siglip_head.py) equals the
original head, is what an exporter traces (the spelling's `traced` flag), leaves eager untouched, and comes off with remove_merge."""

from __future__ import annotations

import pytest
import torch

from tomobile.graphs import MergeConfig, remove_merge
from tomobile.graphs.methods.merge import ARITHMETIC
from tomobile.graphs.methods.ops import using_ops
from tomobile.graphs.models.registry import get_model
from tomobile.graphs.models.siglip_head import static_pool


def _wrapper(spec: str = "none"):
    return get_model("siglip-tiny").builder(MergeConfig.parse(spec)).parts["model"]


def _head(wrapper):
    return wrapper.model.head if hasattr(wrapper.model, "head") else wrapper.model.vision_model.head


@pytest.mark.parametrize("batch,tokens", [(1, 64), (3, 64), (2, 51)])
def test_static_pool_equals_the_original_head(batch, tokens):
    head = _head(_wrapper())
    x = torch.randn(batch, tokens, 64, generator=torch.Generator().manual_seed(tokens)) * 2
    with torch.no_grad():
        original = type(head).forward(head, x)
        ours = static_pool(head, x)
    assert ours.shape == original.shape == (batch, 64)
    torch.testing.assert_close(ours, original, atol=2e-6, rtol=1e-6)


def test_eager_runs_the_original_head_bit_for_bit():
    wrapper = _wrapper("pitome:ratio=0.8")
    head = _head(wrapper)
    assert "forward" in head.__dict__  # patched by apply_merge
    x = torch.randn(2, 51, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(head(x), type(head).forward(head, x))


def test_export_traces_the_static_spelling_and_matches_eager():
    """Exported: no MultiheadAttention internals (no 5-D unsqueeze/squeeze of the packed k/v, no
    bmm), and the exported program equals eager (the original head) to float rounding."""
    wrapper = _wrapper("tome:r=8")
    (x,) = wrapper.example_inputs(seed=2)
    with torch.no_grad():
        with using_ops(wrapper, ARITHMETIC.for_export()):  # as the exporters trace it (export/pipeline.py)
            program = torch.export.export(wrapper, (x,), strict=False)
        eager = wrapper(x)
        exported = program.module()(x)
    targets = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    assert not {t for t in targets if "squeeze" in t or "bmm" in t or "multi_head" in t}, targets
    for ours, theirs in zip(exported, eager, strict=True):
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def test_remove_merge_takes_the_head_patch_off():
    wrapper = _wrapper("tome:r=8")
    remove_merge(wrapper.model)
    assert "forward" not in _head(wrapper).__dict__
    with torch.no_grad():
        program = torch.export.export(wrapper, wrapper.example_inputs(), strict=False)
    targets = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    assert any("squeeze" in t or "bmm" in t or "multi_head" in t for t in targets), targets  # the original head again
