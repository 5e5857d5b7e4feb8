"""Eager generation through the shared sampler, clip writing, and the CLI's bad-input paths."""

import numpy as np
import pytest

from tomobile.export.cli import main
from tomobile.runtime.sampler import LeapConfig, SamplerConfig
from tomobile.runtime.video import eager_runtime, generate, save_clip


@pytest.fixture(scope="module")
def rt():
    return eager_runtime()


def test_generate_counts_calls_and_uses_the_merged_variant(rt):
    cfg = SamplerConfig(steps=4, leap=LeapConfig.parse("2"), tdtm_steps=1)
    gen = generate(rt, "a red circle moving left", 0, cfg)
    assert gen.result.calls == 3 and gen.result.merged_calls == 1 and gen.result.leap_at == 2
    assert gen.variants == ["denoiser", "denoiser_tdtm"]
    assert gen.frames.shape == (8, 32, 32, 3) and gen.frames.dtype == np.float32
    assert 0.0 <= gen.frames.min() and gen.frames.max() <= 1.0


def test_same_seed_same_clip(rt):
    cfg = SamplerConfig(steps=2)
    a = generate(rt, "a blue square moving up", 3, cfg, spatial=True).frames
    b = generate(rt, "a blue square moving up", 3, cfg, spatial=True).frames
    assert np.array_equal(a, b)


def test_save_clip_writes_gif_and_npy(tmp_path):
    frames = np.random.default_rng(0).random((8, 32, 32, 3)).astype(np.float32)
    save_clip(frames, tmp_path / "c.npy")
    assert np.array_equal(np.load(tmp_path / "c.npy"), frames)
    save_clip(frames, tmp_path / "c.gif")
    from PIL import Image

    assert Image.open(tmp_path / "c.gif").n_frames == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.gif", "c.npy"]  # no temp files left


@pytest.mark.parametrize("argv,needle", [
    (["generate", "a red circle moving left", "--out", "clip.mp4"], ".gif or .npy"),
    (["generate", "a red circle moving left", "--out", "clip.gif", "--lpl", "fast"], "--lpl"),
    (["generate", "a red circle moving left", "--out", "clip.gif", "--runtime", "onnxruntime"], "--artifacts"),
])
def test_cli_bad_input_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys, argv, needle):
    monkeypatch.chdir(tmp_path)
    assert main(["-q", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_cli_generate_writes_npy(tmp_path, capsys):
    out = tmp_path / "clip.npy"
    assert main(["-q", "generate", "a green triangle moving down", "--out", str(out), "--steps", "3", "--lpl", "1", "--tdtm-steps", "1"]) == 0
    text = capsys.readouterr().out
    assert "2 denoiser calls (1 TDTM-merged)" in text and "leap at step 1" in text
    assert np.load(out).shape == (8, 32, 32, 3)
