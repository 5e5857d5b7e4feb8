"""Eval harness: metrics sanity and one tiny end-to-end run on eager."""

from dataclasses import replace

import numpy as np
import pytest

from tomobile.runtime.sampler import SamplerConfig, TimestepMode
from tomobile.runtime.video import eager_runtime
from tomobile.runtime.video_eval import (
    MODE_SETS,
    ModeSet,
    Setting,
    clip_psnr,
    default_settings,
    format_table,
    mode_set,
    parse_mode_sets,
    run_video_eval,
    save_grid,
    ssim,
)


def test_psnr_ssim_identity_and_ordering():
    rng = np.random.default_rng(0)
    a = rng.random((2, 16, 16, 3))
    assert clip_psnr(a, a) == 99.0 and abs(ssim(a, a) - 1.0) < 1e-9
    small, big = a + 0.01 * rng.standard_normal(a.shape), a + 0.2 * rng.standard_normal(a.shape)
    assert clip_psnr(a, small) > clip_psnr(a, big) and ssim(a, small) > ssim(a, big)


def test_tiny_eval_run_writes_table_and_grid(tmp_path):
    settings = default_settings(SamplerConfig(steps=3))
    assert [s.name for s in settings][:6] == ["full", "lpl1", "lpl-auto", "tdtm1", "tdtm-all", "lpl1+tdtm1"]
    assert len(settings) == 12 and settings[-1].spatial
    report = run_video_eval(eager_runtime(), settings, prompts=("a red circle moving left",), seeds=(0,))
    rows = report.rows()
    assert rows[0]["speedup"] == 1.0 and rows[0]["psnr"] == 99.0
    assert rows[1]["calls"] == 2.0 and rows[4]["calls"] == 3.0  # lpl1: leap at step 1; tdtm-all: 3 steps
    table = format_table(report)
    assert table.count("\n") == 13 and "lpl1+tdtm1+tome" in table
    save_grid(report, tmp_path / "grid.png")
    assert (tmp_path / "grid.png").stat().st_size > 1000


def test_mode_sets_are_the_originals_and_their_alternatives():
    assert MODE_SETS["original"] == ModeSet("original", "discrete", "original", "original", "original")
    assert MODE_SETS["alternative"] == ModeSet("alternative", "continuous", "full", "midpoint", "keep")
    assert [s.name for s in parse_mode_sets("original, alternative")] == ["original", "alternative"]
    for bad in ("", "original,original", "fast"):
        with pytest.raises(ValueError, match="allowed: a comma list of original, alternative"):
            parse_mode_sets(bad)
    assert mode_set("discrete", "original", {"tdtm_positions": "original", "tdtm_odd": "original"}).name == "original"
    assert mode_set("discrete", "full", {"tdtm_positions": "original", "tdtm_odd": "original"}).name == "custom"


def test_two_mode_sets_run_side_by_side_each_against_its_own_baseline():
    sets = [MODE_SETS["original"], MODE_SETS["alternative"]]
    runtimes = {s.name: eager_runtime(s.tdtm) for s in sets}
    settings = []
    for s in sets:
        base = SamplerConfig(steps=3, timesteps=TimestepMode(s.timesteps))
        settings += [Setting("full", base, modes=s.name), Setting("tdtm-all", replace(base, tdtm_steps=3), modes=s.name)]
    report = run_video_eval(runtimes, settings, prompts=("a red circle moving left",), seeds=(0,))
    rows = report.rows()
    assert [(r["modes"], r["setting"]) for r in rows] == [("original", "full"), ("original", "tdtm-all"),
                                                         ("alternative", "full"), ("alternative", "tdtm-all")]
    assert rows[0]["psnr"] == rows[2]["psnr"] == 99.0 and rows[0]["speedup"] == rows[2]["speedup"] == 1.0
    clips = [s.clips[0] for s in report.stats]
    assert not np.array_equal(clips[0], clips[2])  # discrete and continuous times differ at 3 steps
    assert not np.array_equal(clips[1], clips[3])
    assert format_table(report).splitlines()[2].startswith("| original | full |")
