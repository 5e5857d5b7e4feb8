"""diffusers' Wan 2.1 and LTX-Video transformers at a static shape, and TDTM on their full 3D attention.

The plain exportable transformer is compared with diffusers' own forward of an unpatched copy (same
seed); the TDTM one with the rule applied to diffusers' own modules (apply_tdtm around diffusers'
own attention processors, diffusers' own forward with its own rotary tables), for an even and an
odd latent frame count. The rule itself (pairs averaged, frame 0 alone for odd counts, copy-back,
positions 0..F'-1) is checked against a transcription on plain tensors below.
"""

from __future__ import annotations

import pytest
import torch

from tomobile.graphs.errors import InputError, TomobileError
from tomobile.graphs.methods.tdtm import (
    TdtmOdd,
    merge_frame_tokens,
    merge_frames,
    merged_frames,
    merged_positions,
    unmerge_frames,
)
from tomobile.graphs.methods.tdtm_attention import (
    TdtmAttnProcessor,
    TdtmRule,
    apply_tdtm,
    attention_modules,
    remove_tdtm,
    shared_twin,
)
from tomobile.graphs.models import ltx, wan
from tomobile.graphs.models.video_parts import run_chain
from tomobile.graphs.models.video_transformers import clip_shape, seeded_transformer
from tomobile.graphs.spec.config import MergeConfig

pytest.importorskip("diffusers")
TDTM = MergeConfig.parse("tdtm")
# (family, tiny config, builder, size, frames): 9 / 13 Wan frames are 3 / 4 latent frames, 17 / 25 LTX frames 3 / 4.
CASES = [(wan.WAN, wan.WAN_TINY, wan.wan_tiny, "64x48", 9), (wan.WAN, wan.WAN_TINY, wan.wan_tiny, "64x48", 13),
         (ltx.LTX, ltx.LTX_TINY, ltx.ltx_tiny, "128x96", 17), (ltx.LTX, ltx.LTX_TINY, ltx.ltx_tiny, "128x96", 25)]


def diffusers_forward(family, transformer, inputs: tuple[torch.Tensor, ...], latent: tuple[int, int, int]):
    """The transformer called as WanPipeline / LTXPipeline call it, with diffusers' own rope."""
    if family is wan.WAN:
        return transformer(*inputs, return_dict=False)[0]
    hidden, timestep, text, mask = inputs
    f, h, w = latent
    return transformer(hidden, text, timestep, mask, num_frames=f, height=h, width=w,
                       rope_interpolation_scale=ltx.rope_interpolation_scale(family.vae), return_dict=False)[0]


@pytest.mark.parametrize("family,arch,build,size,frames", CASES, ids=lambda c: getattr(c, "name", None))
def test_plain_equals_diffusers_and_tdtm_equals_the_rule_on_diffusers_modules(family, arch, build, size, frames):
    bundle = build(TDTM, size=size, frames=frames)
    plain, merged = bundle.parts["transformer"], bundle.parts["transformer_tdtm"]
    shape = clip_shape(family, family.vae, family.patch(arch), size, frames)
    reference = seeded_transformer(family, arch)  # unpatched: diffusers' processors and rope
    inputs = plain.example_inputs(seed=3)
    with torch.no_grad():
        ours, want = plain(*inputs)[0], diffusers_forward(family, reference, inputs, shape.latent)
        torch.testing.assert_close(ours, want, atol=1e-5, rtol=0)
        apply_tdtm(reference, TdtmRule(shape.latent[0], shape.tokens_per_frame))
        ours_tdtm, rule = merged(*inputs)[0], diffusers_forward(family, reference, inputs, shape.latent)
    torch.testing.assert_close(ours_tdtm, rule, atol=1e-5, rtol=0)
    assert (ours_tdtm - ours).abs().max() > 1e-3  # the merge changes the output
    assert bundle.manifest["merge"]["merged_frames"] == (shape.latent[0] + 1) // 2


def test_twin_shares_every_weight_and_patch_is_reversible():
    bundle = wan.wan_tiny(TDTM, size="32x32", frames=9)
    plain, merged = (bundle.parts[k].transformer for k in ("transformer", "transformer_tdtm"))
    pairs = list(zip(plain.named_parameters(), merged.named_parameters(), strict=True))
    assert pairs and all(a[0] == b[0] and a[1] is b[1] for a, b in pairs)
    assert not any(isinstance(m.processor, TdtmAttnProcessor) for m in attention_modules(plain))
    assert all(isinstance(m.processor, TdtmAttnProcessor) for m in attention_modules(merged))
    assert len(attention_modules(merged)) == 2 * len(merged.blocks)
    twin = shared_twin(merged)
    before = [type(m.processor) for m in attention_modules(plain)]
    remove_tdtm(twin)
    assert [type(m.processor) for m in attention_modules(twin)] == before
    assert set(twin.state_dict()) == set(plain.state_dict())


def test_processor_merges_the_query_side_and_copies_back():
    """The rule on one attention call: the query-side tokens (B, F*S, C) of 5 frames become
    (0), (1,2), (3,4); the rotary rows are those of frames 0..2; the output is copied back."""
    seen = {}

    def inner(attn, hidden, context, mask, rotary):
        seen.update(hidden=hidden, context=context, rotary=rotary)
        return hidden * 2

    frames, s, c = 5, 3, 4
    x = torch.randn(2, frames * s, c)
    text = torch.randn(2, 7, c)
    rotary = (torch.arange(frames * s).float().reshape(1, -1, 1, 1),) * 2
    out = TdtmAttnProcessor(inner, TdtmRule(frames, s, "first"))(None, x, text, None, rotary)
    frames_x = x.reshape(2, frames, s, c)
    want = torch.stack([frames_x[:, 0], (frames_x[:, 1] + frames_x[:, 2]) / 2, (frames_x[:, 3] + frames_x[:, 4]) / 2], 1)
    torch.testing.assert_close(seen["hidden"], want.reshape(2, 3 * s, c))
    assert seen["context"] is text
    assert seen["rotary"][0].flatten().tolist() == list(range(3 * s))
    back = out.reshape(2, frames, s, c)
    for f, m in enumerate([0, 1, 1, 2, 2]):
        torch.testing.assert_close(back[:, f], 2 * want[:, m])


def test_drop_oracle_keeps_the_first_frames_and_appends_zero_rows():
    """`drop:tdtm`: the same shapes as TDTM with no merge work: the query side is the first F'*S
    tokens (frames 0..2 of 5), the rotary rows those of frames 0..2, the output's last rows zero."""
    seen = {}

    def inner(attn, hidden, context, mask, rotary):
        seen.update(hidden=hidden, rotary=rotary)
        return hidden * 2

    frames, s, c = 5, 3, 4
    x = torch.randn(2, frames * s, c)
    rotary = (torch.arange(frames * s).float().reshape(1, -1, 1, 1),) * 2
    rule = TdtmRule(frames, s, "first", drop=True)
    out = TdtmAttnProcessor(inner, rule)(None, x, torch.randn(2, 7, c), None, rotary)
    assert torch.equal(seen["hidden"], x[:, : 3 * s])
    assert seen["rotary"][0].flatten().tolist() == list(range(3 * s))
    assert out.shape == x.shape
    assert torch.equal(out[:, : 3 * s], 2 * x[:, : 3 * s]) and not out[:, 3 * s:].any()
    assert rule.to_json()["method"] == "drop" and rule.to_json()["like"] == "tdtm"
    twin = MergeConfig.parse("tdtm").oracle()
    assert twin is not None and twin.describe() == "drop:tdtm" and MergeConfig.parse("drop:tdtm") == twin


@pytest.mark.parametrize("frames", [2, 3, 4, 5, 6, 7, 21])
def test_first_mode_keeps_frame_zero_alone_for_odd_counts(frames):
    x = torch.randn(1, frames, 2, 3)
    merged = merge_frames(x, TdtmOdd.FIRST)
    sources = [[0]] + [[i, i + 1] for i in range(1, frames, 2)] if frames % 2 else [[i, i + 1] for i in range(0, frames, 2)]
    assert merged.shape[1] == len(sources) == merged_frames(frames, TdtmOdd.FIRST)
    for m, src in enumerate(sources):
        torch.testing.assert_close(merged[:, m], x[:, src].mean(dim=1))
    back = unmerge_frames(merged, frames, TdtmOdd.FIRST)
    for m, src in enumerate(sources):
        for f in src:
            assert torch.equal(back[:, f], merged[:, m])
    assert merged_positions(frames, odd=TdtmOdd.FIRST) == [float(i) for i in range(len(sources))]
    expected_mid = [0.0] + [2 * i + 1.5 for i in range(frames // 2)] if frames % 2 else [2 * i + 0.5 for i in range(frames // 2)]
    assert merged_positions(frames, "midpoint", TdtmOdd.FIRST) == expected_mid
    flat = x.reshape(1, -1, 3)
    torch.testing.assert_close(merge_frame_tokens(flat, frames, TdtmOdd.FIRST), merged.reshape(1, -1, 3))


@pytest.mark.parametrize("odd,merged", [("first", 3), ("original", 2), ("keep", 3)])
def test_odd_frame_modes_on_a_wan_transformer(odd, merged):
    bundle = wan.wan_tiny(TDTM, size="32x32", frames=17, tdtm_odd=odd)  # 5 latent frames
    assert bundle.manifest["merge"] == {"method": "tdtm", "odd_frames": odd, "positions": "original",
                                        "latent_frames": 5, "merged_frames": merged, "tokens": 20,
                                        "merged_tokens": 4 * merged}
    part = bundle.parts["transformer_tdtm"]
    with torch.no_grad():
        assert part(*part.example_inputs())[0].shape == (1, 4, 5, 4, 4)


def test_clip_shape_follows_the_vae_and_refuses_what_it_cannot_take():
    shape = clip_shape(wan.WAN, wan.WAN.vae, (1, 2, 2), "256x256", 17)
    assert shape.latent == (5, 32, 32) and shape.tokens == 1280 and shape.tokens_per_frame == 256
    assert clip_shape(ltx.LTX, ltx.LTX.vae, (1, 1, 1), "512x512", 33).tokens == 1280
    assert clip_shape(wan.WAN, wan.WAN.vae, (1, 2, 2), "480x832", 81).latent == (21, 60, 104)
    with pytest.raises(InputError, match=r"4k\+1 frames \(1, 5, 9, 13, 17, \.\.\.\)"):
        clip_shape(wan.WAN, wan.WAN.vae, (1, 2, 2), "256x256", 16)
    with pytest.raises(InputError, match="multiples of 16"):
        clip_shape(wan.WAN, wan.WAN.vae, (1, 2, 2), "264x256", 17)
    with pytest.raises(InputError, match=r"8k\+1 frames"):
        clip_shape(ltx.LTX, ltx.LTX.vae, (1, 1, 1), "512x512", 32)
    with pytest.raises(InputError, match="multiples of 32"):
        clip_shape(ltx.LTX, ltx.LTX.vae, (1, 1, 1), "512x496", 33)
    with pytest.raises(InputError, match="at least 2 latent frames"):
        wan.wan_tiny(TDTM, size="32x32", frames=1)
    with pytest.raises(InputError, match="rope_max_seq_len"):
        wan.wan_tiny(MergeConfig(), size="2048x32", frames=1)


@pytest.mark.parametrize("spec", ["tome:r=2", "pitome:ratio=0.9", "tomesd:ratio=0.5", "drop:r=2"])
def test_other_merges_are_refused_before_the_build(spec):
    with pytest.raises(TomobileError, match="none or tdtm"):
        wan.wan21_t2v_1_3b(MergeConfig.parse(spec))  # refused before a 1.3B model is built


def test_builtin_configs_are_the_published_ones():
    """Built on the meta device: configs and parameter counts, without 6 GB of weights."""
    from diffusers import LTXVideoTransformer3DModel, WanTransformer3DModel

    published_wan = {  # Wan-AI/Wan2.1-T2V-1.3B-Diffusers transformer/config.json
        "added_kv_proj_dim": None, "attention_head_dim": 128, "cross_attn_norm": True, "eps": 1e-06,
        "ffn_dim": 8960, "freq_dim": 256, "in_channels": 16, "num_attention_heads": 12, "num_layers": 30,
        "out_channels": 16, "patch_size": [1, 2, 2], "qk_norm": "rms_norm_across_heads", "text_dim": 4096}
    with torch.device("meta"):
        wan13 = WanTransformer3DModel(**wan.WAN21_T2V_1_3B)
        ltx2b = LTXVideoTransformer3DModel(**ltx.LTX_VIDEO)
        ltx_defaults = LTXVideoTransformer3DModel()  # what diffusers' LTX-Video converter builds
    assert {k: list(v) if isinstance(v, tuple) else v for k, v in wan13.config.items() if k in published_wan} \
        == published_wan
    assert sum(p.numel() for p in wan13.parameters()) == 1_418_996_800
    def public(config) -> dict:
        return {k: v for k, v in config.items() if not k.startswith("_")}

    assert public(ltx2b.config) == public(ltx_defaults.config) and len(public(ltx2b.config)) == len(ltx.LTX_VIDEO)
    assert sum(p.numel() for p in ltx2b.parameters()) == 1_923_385_472


def test_wan_split_parts_chain_to_the_monolithic_transformers():
    """`--split blocks`: embed, one part per block and variant (plain, TDTM on the same weights), head."""
    bundle = wan.wan_tiny(TDTM, size="32x48", frames=9)
    split = bundle.splitter(bundle, "blocks")
    sequences = split.manifest["split"]["sequences"]
    assert sequences == {"transformer": ["wan_embed", "wan_block00", "wan_block01", "wan_head"],
                         "transformer_tdtm": ["wan_embed", "wan_block00_tdtm", "wan_block01_tdtm", "wan_head"]}
    assert split.generated_files == bundle.generated_files
    assert set(split.references) == set(sequences) and not set(split.parts) & set(sequences)  # not exported
    for variant in sequences:
        whole = split.references[variant]
        inputs = whole.example_inputs(seed=2)
        with torch.no_grad():
            env = run_chain(split.parts, sequences[variant], dict(zip([s.name for s in whole.input_specs], inputs)))
            assert torch.equal(env["out_hidden_states"], whole(*inputs)[0])
    block, merged = split.parts["wan_block00"], split.parts["wan_block00_tdtm"]
    assert [p.data_ptr() for p in block.parameters()] == [p.data_ptr() for p in merged.parameters()]
    blocks = sum(p.numel() for n, p in split.parts.items() if n.startswith("wan_block") and not n.endswith("_tdtm")
                 for p in p.parameters())
    others = sum(p.numel() for n in ("wan_embed", "wan_head") for p in split.parts[n].parameters())
    assert blocks + others == sum(p.numel() for p in bundle.parts["transformer"].parameters())
