"""wan-shapes: its checkpoint, caption states, and the eval's settings on a small random checkpoint."""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")

from safetensors.torch import save_file  # noqa: E402

from tomobile.cli.main import main  # noqa: E402
from tomobile.graphs.methods.tdtm_attention import apply_tdtm  # noqa: E402
from tomobile.graphs.models.wan_shapes import (  # noqa: E402
    DEMO,
    SCHEDULER_CONFIG,
    TRANSFORMER_CONFIG,
    WEIGHTS,
    caption_states,
    checkpoint_metadata,
    load_wan_shapes,
    wan_transformer,
)
from tomobile.runtime.flow_schedule import SchedulerKind  # noqa: E402
from tomobile.runtime.video_eval import run_video_eval  # noqa: E402
from tomobile.runtime.wan_shapes_eval import (  # noqa: E402
    eager_wan_shapes,
    generate_clip,
    sampler,
    tdtm_rule,
    wan_shapes_settings,
    warm_up,
)


@pytest.fixture(scope="module")
def random_checkpoint(tmp_path_factory):
    """The demo's architecture at 2 layers with seeded random weights, saved as the training script saves."""
    config = {**TRANSFORMER_CONFIG, "num_layers": 2}
    torch.manual_seed(0)
    model = wan_transformer(config)
    path = tmp_path_factory.mktemp("wan_shapes") / "random.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path),
              metadata={"config": json.dumps(config), "demo": json.dumps(DEMO), "train": "{}"})
    return path


def test_caption_states_are_zero_past_the_tokens():
    states = caption_states(["a red circle moving left", ""])
    assert states.shape == (2, DEMO["caption_len"], 384)
    assert torch.all(states[0, 7:] == 0) and torch.any(states[0, 6] != 0)  # [CLS] 5 words [SEP]
    assert torch.all(states[1, 2:] == 0) and torch.any(states[1, 1] != 0)  # "": [CLS] [SEP]


def test_the_demo_samples_on_wans_shipped_scheduler_kind():
    cfg = sampler(30)
    assert cfg.schedule.kind is SchedulerKind.UNIPC and cfg.schedule.steps == 30 and cfg.guidance == 5.0
    assert SCHEDULER_CONFIG["flow_shift"] == DEMO["shift"]


def test_settings_run_through_the_video_eval(random_checkpoint):
    rt = eager_wan_shapes(random_checkpoint, with_tdtm=False)
    settings = wan_shapes_settings(sampler(4), with_tdtm=False)
    assert [s.name for s in settings] == ["full", "lpl2", "lpl-auto"]
    report = run_video_eval(rt, settings, ("a red circle moving left", "a blue square moving up"), (0,),
                            clip=generate_clip, warm=warm_up)
    rows = {r["setting"]: r for r in report.rows()}
    assert rows["full"]["calls"] == 4 and rows["lpl2"]["calls"] == 3
    full = report.stats[0].clips[0]
    assert full.shape == (DEMO["frames"], DEMO["size"], DEMO["size"], 3) and np.all((full >= 0) & (full <= 1))
    again = generate_clip(rt, "a red circle moving left", 0, settings[0].sampler)
    np.testing.assert_array_equal(again.frames, full)  # the same noise for a seed: clips repeat


def test_settings_with_a_tdtm_variant_add_the_tdtm_rows():
    names = [s.name for s in wan_shapes_settings(sampler(30), with_tdtm=True)]
    assert names == ["full", "lpl15", "lpl-auto", "tdtm15", "tdtm-all", "lpl15+tdtm15"]


@pytest.mark.skipif(not WEIGHTS.exists(), reason="the wan-shapes checkpoint is trained by scripts/train_wan_shapes.py")
def test_the_shipped_checkpoint_loads_with_its_config():
    meta = checkpoint_metadata()
    assert meta["config"] == TRANSFORMER_CONFIG and meta["demo"] == DEMO
    model = load_wan_shapes()
    assert sum(p.numel() for p in model.parameters()) < 2_000_000
    assert WEIGHTS.stat().st_size < 8_000_000


def test_the_tdtm_variant_is_the_rule_on_the_same_weights(random_checkpoint):
    """denoiser_tdtm is the checkpoint with `--merge tdtm`'s rule (9 frames: 0 alone, 4 pairs; 64 tokens
    a frame) patched into diffusers' attention: equal to patching a fresh copy, unequal to the plain call."""
    rt = eager_wan_shapes(random_checkpoint)
    model = load_wan_shapes(random_checkpoint)
    rule = tdtm_rule(model)
    assert (rule.frames, rule.tokens_per_frame, rule.merged) == (9, 64, 5)
    x = np.random.default_rng(0).standard_normal(rt.shape).astype(np.float32)
    states = rt.encode("a red circle moving left")
    merged, plain = rt.denoisers["denoiser_tdtm"](x, 700.0, states), rt.denoisers["denoiser"](x, 700.0, states)
    fresh = apply_tdtm(wan_transformer(checkpoint_metadata(random_checkpoint)["config"]), rule)
    fresh.load_state_dict(load_wan_shapes(random_checkpoint).state_dict())
    with torch.no_grad():
        want = fresh(hidden_states=torch.from_numpy(x), timestep=torch.tensor([700.0]),
                     encoder_hidden_states=torch.from_numpy(states), return_dict=False)[0].numpy()
    np.testing.assert_allclose(merged, want, atol=1e-6)
    assert np.abs(merged - plain).max() > 1e-3


def test_eval_video_model_wan_shapes_writes_the_table(random_checkpoint, tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["eval", "video", "--model", "wan-shapes", "--weights", str(random_checkpoint), "--steps", "4",
                 "--prompts", "1", "--out", str(out), "-q"]) == 0
    printed = capsys.readouterr().out
    assert "wan-shapes, runtime eager, 1 prompts x 1 seeds, baseline 4 UniPC steps, guidance 5.0" in printed
    rows = {r["setting"]: r for r in json.loads((out / "eval_video.json").read_text())["rows"]}
    assert list(rows) == ["full", "lpl2", "lpl-auto", "tdtm2", "tdtm-all", "lpl2+tdtm2"]
    assert rows["full"]["calls"] == 4 and rows["lpl2+tdtm2"]["calls"] == 3
    assert rows["tdtm2"]["psnr"] < rows["full"]["psnr"]  # TDTM changes the clip: not the full run again
    assert (out / "settings_grid.png").stat().st_size > 0 and (out / "eval_video.md").read_text().startswith("|")
