"""Eager generation through the shared sampler, clip writing, and the CLI's bad-input paths."""

import numpy as np
import pytest

from tomobile.cli.main import main
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


def test_save_clip_writes_an_mp4_of_every_frame(tmp_path):
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    frames = np.zeros((5, 8, 8, 3), np.float32)
    frames[:, :, :, 0] = np.linspace(0, 1, 5)[:, None, None]  # red rises frame by frame
    save_clip(frames, tmp_path / "c.mp4")
    reader = imageio_ffmpeg.read_frames(str(tmp_path / "c.mp4"))
    meta = next(reader)
    decoded = [np.frombuffer(f, np.uint8).reshape(32, 32, 3) for f in reader]
    assert meta["size"] == (32, 32) and len(decoded) == 5  # upscaled 4x, nothing dropped
    red = [float(f[..., 0].mean()) for f in decoded]
    assert all(abs(r - 255 * v) < 12 for r, v in zip(red, np.linspace(0, 1, 5)))  # H.264 is lossy, not this lossy
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.mp4"]


@pytest.mark.parametrize("argv,needle", [
    (["generate", "a red circle moving left", "--out", "clip.avi"], ".gif or .npy or .mp4"),
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


def _fake_export(folder, **modes):
    """A hand-made video-dit-tiny export (tests/fakes.py) whose manifest records `modes`."""
    import json

    from fakes import fake_video_export

    fake_video_export(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["model_config"].update(modes)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.mark.parametrize("recorded,argv,needle", [
    ({"tdtm_positions": "midpoint", "tdtm_odd": "keep"}, ["--tdtm-positions", "original"],
     "--tdtm-positions original differs from the 'midpoint'"),
    ({"tdtm_positions": "original", "tdtm_odd": "original"}, ["--tdtm-odd", "keep"], "--tdtm-odd keep differs from the 'original'"),
    ({}, ["--tdtm-positions", "original"], "differs from the 'midpoint'"),  # exported before the modes: midpoint, keep
    ({}, ["--tdtm-positions", "middle"], "bad --tdtm-positions value 'middle'; allowed: original, midpoint"),
])
def test_generate_refuses_modes_the_artifacts_lack(tmp_path, capsys, recorded, argv, needle):
    art = _fake_export(tmp_path / "art", **recorded)
    out = tmp_path / "clip.gif"
    code = main(["-q", "generate", "a red circle moving left", "--out", str(out), "--runtime", "onnxruntime",
                 "--artifacts", str(art), *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and needle in err and len(err.splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize("argv,needle", [
    (["--mode-sets", "original", "--timesteps", "continuous"], "--mode-sets sets every mode; drop --timesteps"),
    (["--mode-sets", "original,newest"], "allowed: a comma list of original, alternative"),
    (["--mode-sets", "original,alternative", "--artifacts", "{art}"], "mode set original needs artifacts exported with "
                                                                       "--tdtm-positions original --tdtm-odd original"),
])
def test_eval_video_mode_set_errors(tmp_path, capsys, argv, needle):
    art = _fake_export(tmp_path / "art", tdtm_positions="midpoint", tdtm_odd="keep")
    argv = [a.format(art=art) for a in argv]
    assert main(["-q", "eval", "video", "--runtime", "onnxruntime", "--out", str(tmp_path / "ev"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1
    assert not (tmp_path / "ev").exists()


def test_eager_runtime_runs_the_asked_tdtm_modes():
    """The checkpoint's recorded modes by default; asked ones replace them, and the merged variant
    follows (positions change its output, the odd mode does not at T = 8)."""
    from tomobile.graphs.models.video_zoo import checkpoint_config

    recorded = checkpoint_config()
    assert eager_runtime().tdtm == {"tdtm_positions": recorded.tdtm_positions.value, "tdtm_odd": recorded.tdtm_odd.value}
    rts = {(p, o): eager_runtime({"tdtm_positions": p, "tdtm_odd": o})
           for p, o in (("original", "original"), ("midpoint", "original"), ("original", "keep"))}
    assert rts["midpoint", "original"].tdtm == {"tdtm_positions": "midpoint", "tdtm_odd": "original"}
    x = np.random.default_rng(0).standard_normal((1, 3, 8, 32, 32)).astype(np.float32)
    y, mask = rts["original", "original"].encode("a red circle moving left")
    args = (x, np.array([0.7], np.float32), y, mask, np.array([4.0], np.float32))
    v = {k: rt.denoisers["denoiser_tdtm"](*args) for k, rt in rts.items()}
    assert np.abs(v["original", "original"] - v["midpoint", "original"]).max() > 1e-3
    assert np.array_equal(v["original", "original"], v["original", "keep"])
    plain = {k: rt.denoisers["denoiser"](*args) for k, rt in rts.items()}
    assert np.array_equal(plain["original", "original"], plain["midpoint", "original"])
