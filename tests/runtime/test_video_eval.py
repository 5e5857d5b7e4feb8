"""Eval harness: metrics sanity and one tiny end-to-end run on eager."""

import numpy as np

from tomobile.runtime.sampler import SamplerConfig
from tomobile.runtime.video import eager_runtime
from tomobile.runtime.video_eval import default_settings, format_table, psnr, run_video_eval, save_grid, ssim


def test_psnr_ssim_identity_and_ordering():
    rng = np.random.default_rng(0)
    a = rng.random((2, 16, 16, 3))
    assert psnr(a, a) == 99.0 and abs(ssim(a, a) - 1.0) < 1e-9
    small, big = a + 0.01 * rng.standard_normal(a.shape), a + 0.2 * rng.standard_normal(a.shape)
    assert psnr(a, small) > psnr(a, big) and ssim(a, small) > ssim(a, big)


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
