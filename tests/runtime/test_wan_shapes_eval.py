"""wan-shapes: its checkpoint, caption states, and the eval's settings on a small random checkpoint."""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")

from safetensors.torch import save_file  # noqa: E402

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
from tomobile.runtime.wan_shapes_eval import eager_wan_shapes, generate_clip, sampler, wan_shapes_settings, warm_up  # noqa: E402


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
    rt = eager_wan_shapes(random_checkpoint)
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
