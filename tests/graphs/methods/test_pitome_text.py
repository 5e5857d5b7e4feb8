"""PiToMe on BERT-style text (`pitome_text`) against the original-style reference
(tests/pitome_reference.py): random inputs, exact ties, degenerate metrics, padded batches (every
case of padding against r), the plan's schedules and whole tiny-BERT forwards."""

from __future__ import annotations

import pitome_reference as ref
import pytest
import torch

from tomobile.graphs import MergeConfig, SpecError, merge_plan
from tomobile.graphs.methods.merge import ARITHMETIC, merge_sum, one_hot_assignment
from tomobile.graphs.methods.pitome import merge_count, pitome_text_assignment, with_protected
from tomobile.graphs.methods.registry import make_plan
from tomobile.graphs.models.hf_models import _bert_layer, apply_merge


def _static(metric, x, ratio, margin, valid=None):
    """tomobile's text step on (metric, x) with the class token at 0: plain means and token counts."""
    r = merge_count(metric.shape[1] - 1, ratio)
    pos = pitome_text_assignment(metric[:, 1:], r, margin, None if valid is None else valid[:, 1:])
    m = one_hot_assignment(with_protected(pos, 1, valid is not None), x.shape[1] - r, x.dtype)
    return merge_sum(m, x) / torch.clamp(ARITHMETIC.row_sum(m), min=1.0), merge_sum(m, torch.ones_like(x[..., :1]))


def _check(metric, x, ratio, margin, valid=None):
    ours = _static(metric, x, ratio, margin, valid)
    theirs = ref.merge_wavg(ref.pitome_text(metric, ratio, margin, True, valid), x, None)
    for a, b in zip(ours, theirs, strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    return ours


def _mask(t: int, pads: list[int]) -> torch.Tensor:
    valid = torch.ones(len(pads), t)
    for row, p in enumerate(pads):
        if p:
            valid[row, t - p:] = 0.0
    return valid


def test_random_inputs_match_the_reference():
    gen = torch.Generator().manual_seed(20)
    for t, ratio, margin in [(17, 0.9, 0.9), (33, 0.5, 0.65), (64, 0.7, 0.8), (50, 0.95, 0.0), (9, 0.6, 0.5)]:
        _check(torch.randn(2, t, 8, generator=gen), torch.randn(2, t, 5, generator=gen), ratio, margin)


def test_the_halves_differ_from_alternation():
    """A = the r highest energies, B = the next r: the merged B slots hold the ranks r..2r-1."""
    gen = torch.Generator().manual_seed(4)
    metric = torch.randn(1, 25, 8, generator=gen)
    pos = pitome_text_assignment(metric, 6, 0.8)
    counts = torch.bincount(pos[0].long(), minlength=19)
    assert counts.sum() == 25 and (counts[:13] == 1).all()  # kept tokens alone in slots 0..12
    assert counts[13:].sum() == 12  # the 6 A tokens went into the 6 B slots


def test_exact_ties_break_as_a_stable_sort():
    gen = torch.Generator().manual_seed(7)
    metric = torch.cat([torch.randn(1, 1, 6, generator=gen), torch.randn(1, 4, 6, generator=gen).repeat(1, 6, 1)], 1)
    _check(metric, torch.randn(1, 25, 3, generator=gen), 0.7, 0.9)  # each row 6 times: equal energies and sims


def test_degenerate_metrics():
    x = torch.randn(1, 21, 4, generator=torch.Generator().manual_seed(3))
    for metric in (torch.zeros(1, 21, 5), torch.ones(1, 21, 5), torch.eye(21)[None, :, :5]):
        _check(metric, x, 0.6, 0.8)


@pytest.mark.parametrize("t,ratio", [(17, 0.7), (33, 0.6), (64, 0.8)])
def test_padded_batches_match_the_reference_and_never_mix(t, ratio):
    """Padding counts below r, equal to r, between r and 2r, equal to 2r and above, in one batch."""
    r = merge_count(t - 1, ratio)
    gen = torch.Generator().manual_seed(t)
    pads = [0, 1, r - 1, r, r + 1, 2 * r, 2 * r + 3]
    valid = _mask(t, pads)
    metric, x = torch.randn(len(pads), t, 8, generator=gen), torch.randn(len(pads), t, 5, generator=gen)
    _check(metric, x, ratio, 0.8, valid)
    pos = with_protected(pitome_text_assignment(metric[:, 1:], r, 0.8, valid[:, 1:]), 1, True)  # (B, T)
    for row, p in enumerate(pads):
        real, pad = pos[row, valid[row] > 0], pos[row, valid[row] == 0]
        assert not set(real.tolist()) & set(pad.tolist())  # no slot holds both
        assert (pad == -1).sum() == (p if p <= r else 0)  # padding A without a padding B: dropped
        merged_real = len(real) - len(set(real.tolist()))
        assert merged_real == max(0, r - p)  # padding takes the merges first


def test_padding_content_does_not_change_real_tokens():
    gen = torch.Generator().manual_seed(5)
    valid = _mask(24, [3, 9])
    metric = torch.randn(2, 24, 8, generator=gen)
    other = metric.clone()
    other[valid == 0] = torch.randn(int((valid == 0).sum()), 8, generator=gen)
    a = pitome_text_assignment(metric[:, 1:], 5, 0.8, valid[:, 1:])
    b = pitome_text_assignment(other[:, 1:], 5, 0.8, valid[:, 1:])
    assert torch.equal(a[valid[:, 1:] > 0], b[valid[:, 1:] > 0])


def test_text_plan_follows_their_bert_patch():
    plan = make_plan(MergeConfig.parse("pitome:ratio=0.9"), 6, 128, class_token=True, padded=True)
    assert plan.r == (12, 11, 10, 0, 0, 0)  # one ratio: the first 3 layers, floor(T - 0.9 T) of T - 1
    assert plan.get("text") and plan.get("bsm_layers") == 0
    assert plan.get("margin_per_layer") == tuple(0.9 - 0.25 * i / 6 for i in range(6))
    plan = make_plan(MergeConfig.parse("pitome:ratio=0.9,0.8,1,0.95,margin=0.7"), 6, 64, True, padded=True)
    assert plan.r == (6, 11, 0, 2, 0, 0) and plan.get("margin_per_layer") == (0.7,) * 6  # given: constant
    for spec in ("pitome:ratio=0.9,bsm_layers=1", "pitome:ratio=0.9,margin=1", "pitome:ratio=0.4"):
        with pytest.raises(SpecError):
            make_plan(MergeConfig.parse(spec), 6, 128, True, padded=True)
    vision = make_plan(MergeConfig.parse("pitome:ratio=0.9"), 12, 197, True)
    assert vision.get("margin_per_layer")[6] == 0.75 - 0.75 * 6 / 12 and len([r for r in vision.r if r]) == 12


def _tiny_bert(layers: int = 4):
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    return BertModel(BertConfig(vocab_size=300, hidden_size=32, num_hidden_layers=layers, num_attention_heads=4,
                                intermediate_size=64)).eval()


@pytest.mark.parametrize("spec,pads", [("pitome:ratio=0.7", [0, 3]),
                                       ("pitome:ratio=0.8,0.6,0.9,0.7,margin=0.5", [20, 6]),
                                       ("pitome:ratio=0.6,prop_attn=0", [40, 0])])
def test_whole_bert_forward_matches_the_reference(spec, pads):
    model = _tiny_bert()
    apply_merge(model, MergeConfig.parse(spec), seq_len=48)
    plan = merge_plan(model)
    assert plan.tokens[-1] < 48
    gen = torch.Generator().manual_seed(len(spec))
    ids = torch.randint(5, 300, (2, 48), generator=gen)
    valid = _mask(48, pads)
    with torch.no_grad():
        ours = model(input_ids=ids, attention_mask=valid.long()).last_hidden_state
        x = model.embeddings(input_ids=ids, token_type_ids=torch.zeros_like(ids))
        theirs = ref.reference_text_layers(x, valid, [_bert_layer(layer) for layer in model.encoder.layer], plan)
    assert ours.shape == (2, 48, 32)
    torch.testing.assert_close(ours, theirs, atol=2e-5, rtol=1e-5)


def test_ratio_one_leaves_the_model_unpatched():
    model = _tiny_bert(2)
    ids = torch.randint(5, 300, (1, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        base = model(input_ids=ids).last_hidden_state
        apply_merge(model, MergeConfig.parse("pitome:ratio=1"), seq_len=16)
        same = model(input_ids=ids).last_hidden_state
    assert not merge_plan(model).merges and "forward" not in model.__dict__
    assert torch.equal(base, same)
