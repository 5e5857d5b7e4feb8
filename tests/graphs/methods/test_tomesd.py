"""tomesd on diffusers UNets: the static patch against the original `tomesd` package (0.1.3)."""

import copy

import pytest
import torch

from tomobile.graphs.methods.merge import ARITHMETIC
from tomobile.graphs.methods.merge_indexed import INDEXED
from tomobile.graphs.methods.tomesd import TomesdConfig, apply_tomesd, block_plans, remove_tomesd
from tomobile.graphs.models.sd_unet import SD_TINY, UNetModel, seeded_unet
from tomobile.graphs.spec.config import MergeConfig
from tomobile.graphs.spec.grammar import SpecError

tomesd = pytest.importorskip("tomesd", reason="tomesd 0.1.3 is in the dev extra that `make test` installs")


@pytest.fixture(scope="module")
def unet():
    return seeded_unet(SD_TINY)


def _reference(unet, cfg: TomesdConfig, inputs):
    """The original tomesd.apply_patch on a copy of the same UNet; its generator seeded as ours."""
    ref = copy.deepcopy(unet)
    tomesd.apply_patch(ref, ratio=cfg.ratio, max_downsample=cfg.max_downsample, sx=cfg.sx, sy=cfg.sy,
                       use_rand=cfg.use_rand, merge_attn=cfg.merge_attn, merge_crossattn=cfg.merge_crossattn,
                       merge_mlp=cfg.merge_mlp)
    ref._tome_info["args"]["generator"] = torch.Generator().manual_seed(cfg.seed)
    with torch.no_grad():
        return ref(*inputs, return_dict=False)[0]


CASES = [  # (config, latent side, batch)
    (TomesdConfig(0.5), 16, 1),
    (TomesdConfig(0.3, max_downsample=2), 16, 1),
    (TomesdConfig(0.6, max_downsample=8, merge_crossattn=True, merge_mlp=True), 24, 1),
    (TomesdConfig(0.5, sx=4, sy=2), 20, 1),  # 20 is not a multiple of sx=4: the last columns are sources
    (TomesdConfig(0.5, max_downsample=2, use_rand=True, seed=3), 16, 2),  # CFG batch: a fixed draw
    (TomesdConfig(0.4, max_downsample=4, use_rand=True, seed=11, merge_mlp=True), 16, 2),
]


@pytest.mark.parametrize("cfg,latent,batch", CASES, ids=lambda v: v.describe() if isinstance(v, TomesdConfig) else str(v))
def test_equals_tomesd_package(unet, cfg, latent, batch):
    wrapper = UNetModel(unet, latent, batch)
    inputs = wrapper.example_inputs(seed=latent)
    with torch.no_grad():
        plain = wrapper(*inputs)[0]
    outputs = {}
    for ops in (ARITHMETIC, INDEXED):  # the one-hot spatial merge (ARITHMETIC) and the indexed one (INDEXED)
        plans = apply_tomesd(unet, cfg, inputs, ops=ops)
        try:
            with torch.no_grad():
                outputs[ops] = wrapper(*inputs)[0]
        finally:
            remove_tomesd(unet)
    theirs = _reference(unet, cfg, inputs)
    assert any(p is not None for p in plans)
    for ours in outputs.values():
        assert (ours - plain).abs().max() > 1e-3  # the merge changes the output ...
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)  # ... exactly as tomesd does, either spelling
    with torch.no_grad():
        assert torch.equal(wrapper(*inputs)[0], plain)  # remove_tomesd restores the original


def test_cfg_batch_takes_one_timestep_for_both_halves(unet):
    """The UNet contract (docs/stable_diffusion.md): timestep (1,) at every batch, broadcast to the
    batch in the graph, as optimum's pipeline sends it with guidance (tests/export/test_sd_optimum.py)."""
    wrapper = UNetModel(unet, 8, 2)
    assert [(s.name, s.shape) for s in wrapper.input_specs] == [
        ("sample", (2, 4, 8, 8)), ("timestep", (1,)), ("encoder_hidden_states", (2, 77, SD_TINY["cross_attention_dim"]))]
    sample, timestep, text = wrapper.example_inputs(seed=1)
    with torch.no_grad():
        ours = wrapper(sample, timestep, text)[0]
        halves = [unet(sample[i : i + 1], timestep, text[i : i + 1]).sample for i in range(2)]
    torch.testing.assert_close(ours, torch.cat(halves), rtol=0, atol=1e-5)  # each half at the one step


def test_ratio_zero_is_the_unpatched_unet(unet):
    wrapper = UNetModel(unet, 16, 1)
    inputs = wrapper.example_inputs()
    with torch.no_grad():
        plain = wrapper(*inputs)[0]
    assert all(p is None for p in apply_tomesd(unet, TomesdConfig(0.0), inputs))
    with torch.no_grad():
        assert torch.equal(wrapper(*inputs)[0], plain)
    remove_tomesd(unet)


def test_plans_follow_tomesd_resolutions():
    tokens = [4096, 4096, 1024, 1024, 256, 256, 64, 256, 256, 256, 1024, 1024, 1024, 4096, 4096, 4096]  # SD-1.5
    plans = block_plans(tokens, (64, 64), 1, TomesdConfig(0.5, max_downsample=2))
    assert [(p.h, p.r) if p else None for p in plans] == [
        (64, 2048), (64, 2048), (32, 512), (32, 512), None, None, None, None, None, None,
        (32, 512), (32, 512), (32, 512), (64, 2048), (64, 2048), (64, 2048)]
    # Batch 1 never randomises (tomesd's odd-batch rule): top-left destinations.
    assert plans[0].dst[:3] == (0, 2, 4)
    drawn = block_plans(tokens, (64, 64), 2, TomesdConfig(0.5, use_rand=True, seed=1))
    assert drawn[0].dst != plans[0].dst and drawn[0].dst != drawn[1].dst  # one draw per block
    assert drawn == block_plans(tokens, (64, 64), 2, TomesdConfig(0.5, use_rand=True, seed=1))  # seeded


@pytest.mark.parametrize("spec,expected", [
    ("tomesd:ratio=0.5", TomesdConfig(0.5)),
    ("tomesd:ratio=0.3,max_downsample=2,use_rand=1,seed=4", TomesdConfig(0.3, max_downsample=2, use_rand=True, seed=4)),
    ("tomesd:ratio=0.5,sx=4,sy=1,merge_attn=0,merge_mlp=1", TomesdConfig(0.5, sx=4, sy=1, merge_attn=False,
                                                                        merge_mlp=True)),
])
def test_parse_and_describe_round_trip(spec, expected):
    assert TomesdConfig.parse(spec) == expected
    assert TomesdConfig.parse("tomesd:" + expected.describe()) == expected
    assert MergeConfig.parse(spec).params == expected  # through the method registry


@pytest.mark.parametrize("spec", ["tomesd:", "tomesd:max_downsample=2", "tomesd:ratio=1.0", "tomesd:ratio=-0.1",
                                  "tomesd:ratio=nan", "tomesd:ratio=0.5,max_downsample=3", "tomesd:ratio=0.5,use_rand=2",
                                  "tomesd:ratio=0.5,ratio=0.3", "tomesd:ratio=0.5,r=3", "tomesd:ratio=0.5,sx=0"])
def test_bad_specs_are_refused(spec):
    with pytest.raises(SpecError):
        TomesdConfig.parse(spec)


def test_drop_twin_runs_the_same_blocks_on_the_same_token_counts_without_merging(unet):
    """`drop:tomesd:...` (bench's oracle): every merging block's self-attention sees S - r tokens,
    as under the merge, and the output differs from both the merged and the unmerged UNet."""
    from tomobile.graphs.models.sd_unet import unet_bundle

    config = MergeConfig.parse("tomesd:ratio=0.5")
    twin = config.oracle()
    assert twin is not None and twin.describe() == "drop:tomesd:ratio=0.5" and MergeConfig.parse(twin.describe()) == twin

    def attn1_tokens(spec: MergeConfig) -> tuple[list[int], torch.Tensor, dict]:
        bundle = unet_bundle("t", unet, spec)
        wrapper = bundle.parts["unet/model"]
        seen: list[int] = []
        hooks = [m.attn1.register_forward_pre_hook(lambda mod, args: seen.append(args[0].shape[1]))
                 for m in unet.modules() if type(m).__name__ == "BasicTransformerBlock"]
        try:
            with torch.no_grad():
                out = wrapper(*wrapper.example_inputs(seed=1))[0]
        finally:
            for hook in hooks:
                hook.remove()
            remove_tomesd(unet)
        return seen, out, bundle.manifest

    plain, plain_out, _ = attn1_tokens(MergeConfig())
    merged, merged_out, merged_manifest = attn1_tokens(config)
    dropped, dropped_out, manifest = attn1_tokens(twin)
    assert merged == dropped and merged != plain  # 16x16 blocks: 256 -> 128 tokens, deeper blocks untouched
    assert sorted(set(plain) - set(merged)) == [256] and 128 in merged
    assert manifest["merge"]["method"] == "drop" and manifest["merge"]["like"] == "tomesd"
    assert manifest["tomesd_blocks"] == merged_manifest["tomesd_blocks"]
    assert (dropped_out - merged_out).abs().max() > 1e-3 and (dropped_out - plain_out).abs().max() > 1e-3
