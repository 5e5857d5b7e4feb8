"""The whole WanPipeline on the phone path (issue 31's Done-means): a small WanPipeline folder of a
configuration no other test uses, exported with `--merge tdtm --format onnx`, then `tomobile
generate ... --runtime onnxruntime --latents L.npy --tdtm-steps K --lpl off --out clip.npy` equals
diffusers' `WanPipeline(..., latents=L, output_type="np")` within 70 dB PSNR, for K = 0 and for
K = 2 of 4 (diffusers' own transformer with the TDTM rule patched into its attention for the first
K steps). Bad input: one line, exit 2, nothing written."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("accelerate")

from wan_fixture import PROMPT, WanParts, latent_shape, small_wan_pipeline  # noqa: E402

from tomobile.cli.main import main  # noqa: E402
from tomobile.graphs.methods.tdtm_attention import TdtmRule, apply_tdtm, remove_tdtm  # noqa: E402
from tomobile.runtime.report import psnr  # noqa: E402

# 1 block of 2 heads x 8, text width 24, 8 latent channels, Euler: used by no other test
PARTS = WanParts(seed=3, text_dim=24, layers=1, heads=2, head_dim=8, ffn=24, z_dim=8, scheduler="euler")
SIZE, FRAMES, STEPS, GUIDANCE, LENGTH = 32, 9, 4, 5.0, 16


def _run(argv: list[str]) -> int:
    try:
        return main([str(a) for a in argv])
    except SystemExit as stop:  # argparse
        return int(stop.code)


def export_pipeline(root: Path, fmt: str):
    """(pipeline, pipeline folder, export folder, latents file): PARTS saved, exported in `fmt`."""
    pipe = small_wan_pipeline(PARTS)
    pipe.save_pretrained(str(root / "pipe"))
    out = root / "export"
    code = _run(["export", root / "pipe", "--size", SIZE, "--frames", FRAMES, "--merge", "tdtm", "--format", fmt,
                 "--text-length", LENGTH, "--out", out, "--quiet"])
    assert code == 0
    latents = torch.randn(latent_shape(pipe, SIZE, SIZE, FRAMES), generator=torch.Generator().manual_seed(11))
    np.save(root / "latents.npy", latents.numpy())
    return pipe, root / "pipe", out, root / "latents.npy"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return export_pipeline(tmp_path_factory.mktemp("wan-pipeline"), "onnx")


def diffusers_frames(pipe, latents: torch.Tensor, tdtm_steps: int) -> np.ndarray:
    """WanPipeline's frames (F, H, W, 3) from `latents`, the TDTM rule on for its first `tdtm_steps` steps."""
    f, h, w = latents.shape[2:]
    rule = TdtmRule(f, (h // 2) * (w // 2))  # patch (1, 2, 2); odd latent frames: the first alone
    if tdtm_steps:
        apply_tdtm(pipe.transformer, rule)

    def end_of_step(pipeline, i, t, kwargs):
        if i == tdtm_steps - 1:
            remove_tdtm(pipeline.transformer)
        return {}

    try:
        return pipe(PROMPT, height=SIZE, width=SIZE, num_frames=FRAMES, num_inference_steps=STEPS,
                    guidance_scale=GUIDANCE, latents=latents.clone(), output_type="np", max_sequence_length=LENGTH,
                    callback_on_step_end=end_of_step).frames[0]
    finally:
        remove_tdtm(pipe.transformer)


def test_the_manifest_describes_the_pipeline(exported):
    pipe, _, out, _ = exported
    manifest = json.loads((out / "manifest.json").read_text())
    spec = manifest["pipeline"]
    assert spec["kind"] == "wan-pipeline" and manifest["validation"]["passed"]
    assert spec["parts"] == {"text_encoder": "text_encoder", "transformer": "transformer",
                             "transformer_tdtm": "transformer_tdtm", "vae_decoder": "vae_decoder"}
    assert spec["scheduler"] == {"class": "FlowMatchEulerDiscreteScheduler", "config": "scheduler/scheduler_config.json",
                                 "shift": 3.0}
    assert spec["guidance"] == 5.0 and spec["text_tokens"] == LENGTH and spec["latent_shape"] == [1, 8, 3, 4, 4]
    assert spec["latents_mean"] == pytest.approx(pipe.vae.config.latents_mean)
    assert spec["latents_std"] == pytest.approx(pipe.vae.config.latents_std)
    assert {a["part"] for a in manifest["artifacts"]} == set(spec["parts"])
    assert (out / "tokenizer" / "tokenizer.json").is_file() and (out / "scheduler" / "scheduler_config.json").is_file()


@pytest.mark.parametrize("tdtm_steps", [0, 2])
def test_generate_equals_wanpipeline_from_the_same_latents(exported, tmp_path, tdtm_steps):
    check_generate(exported, tmp_path, tdtm_steps, "onnxruntime")


@pytest.mark.parametrize("tdtm_steps", [0, 2])
def test_eager_generate_equals_wanpipeline_and_onnxruntime(exported, tmp_path, tdtm_steps):
    """--runtime eager rebuilds the parts from the source folder the manifest names: the same
    bound against diffusers as ONNX Runtime, and within it of the ONNX Runtime clip."""
    eager = check_generate(exported, tmp_path / "eager", tdtm_steps, "eager")
    ort = check_generate(exported, tmp_path / "ort", tdtm_steps, "onnxruntime")
    assert psnr(eager, ort, peak=1.0) >= 70.0 and not np.array_equal(eager, np.zeros_like(eager))


@pytest.mark.slow  # the ExecuTorch lowering of the VAE decoder alone takes minutes on 2 shared cores
@pytest.mark.parametrize("fmt, runtime", [("executorch", "executorch"), ("coreai", "coreai")])
def test_executorch_and_coreai_generate_equal_wanpipeline(tmp_path, fmt, runtime):
    exported = export_pipeline(tmp_path, fmt)
    for tdtm_steps in (0, 2):
        check_generate(exported, tmp_path, tdtm_steps, runtime)


def check_generate(exported, tmp_path: Path, tdtm_steps: int, runtime: str) -> np.ndarray:
    """The clip of `generate` on `runtime`, checked against diffusers' WanPipeline."""
    pipe, _, out, latents = exported
    tmp_path.mkdir(parents=True, exist_ok=True)
    clip = tmp_path / "clip.npy"
    code = _run(["generate", PROMPT, "--artifacts", out, "--runtime", runtime, "--steps", STEPS, "--guidance",
                 GUIDANCE, "--latents", latents, "--tdtm-steps", tdtm_steps, "--lpl", "off", "--out", clip, "--quiet"])
    assert code == 0
    ours = np.load(clip)
    ref = diffusers_frames(pipe, torch.from_numpy(np.load(latents)), tdtm_steps)
    assert ours.shape == ref.shape == (FRAMES, SIZE, SIZE, 3) and ours.dtype == np.float32
    assert psnr(ref, ours, peak=1.0) >= 70.0
    if tdtm_steps:  # the rule changes the clip: the comparison above can tell K = 2 from K = 0
        assert psnr(diffusers_frames(pipe, torch.from_numpy(np.load(latents)), 0), ours, peak=1.0) < 70.0
    return ours


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_generate_writes_gif_and_mp4(exported, tmp_path, suffix):
    if suffix == ".mp4":
        pytest.importorskip("imageio_ffmpeg")
    _, _, out, latents = exported
    clip = tmp_path / f"clip{suffix}"
    assert _run(["generate", PROMPT, "--artifacts", out, "--runtime", "onnxruntime", "--steps", 2, "--latents", latents,
                 "--out", clip, "--quiet"]) == 0
    assert clip.stat().st_size > 0 and sorted(p.name for p in tmp_path.iterdir()) == [clip.name]


def test_generate_leaps_with_lpl(exported, tmp_path, capsys):
    _, _, out, latents = exported
    clip = tmp_path / "clip.npy"
    assert _run(["generate", PROMPT, "--artifacts", out, "--runtime", "onnxruntime", "--steps", STEPS, "--latents",
                 latents, "--lpl", 2, "--tdtm-steps", 1, "--out", clip]) == 0
    text = capsys.readouterr().out
    assert "3 velocity evaluations (6 transformer calls, guidance 5)" in text and "1 TDTM-merged" in text
    assert "leap at step 2" in text and np.all(np.isfinite(np.load(clip)))


def _snapshot(root: Path) -> dict[str, tuple]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def _bad_folders(root: Path, pipe_dir: Path) -> dict[str, Path]:
    """Copies of the pipeline folder with one part missing or mismatched."""
    folders = {}
    for name, edit in (("no-vae", lambda d: shutil.rmtree(d / "vae")),
                       ("no-tokenizer", lambda d: shutil.rmtree(d / "tokenizer")),
                       ("wide-text", lambda d: _edit(d / "text_encoder" / "config.json", d_model=32)),
                       ("vae-z4", lambda d: _edit(d / "vae" / "config.json", z_dim=4)),
                       ("ddim", lambda d: _edit(d / "scheduler" / "scheduler_config.json", _class_name="DDIMScheduler"))):
        folder = root / name
        if not folder.exists():
            shutil.copytree(pipe_dir, folder)
            edit(folder)
        folders[name] = folder
    return folders


def _moved_sources(root: Path, export: Path) -> dict[str, str]:
    """Copies of the export whose manifest names a source folder that is gone, and one that holds
    another pipeline of the same configuration (other weights)."""
    if not root.exists():
        small_wan_pipeline(replace(PARTS, seed=4)).save_pretrained(str(root / "other-pipe"))
        for name, source in (("gone", root / "no-such-pipe"), ("changed", root / "other-pipe")):
            shutil.copytree(export, root / name)
            manifest = json.loads((root / name / "manifest.json").read_text())
            manifest["pipeline"]["source"] = str(source)
            (root / name / "manifest.json").write_text(json.dumps(manifest))
    return {"gone": str(root / "gone"), "changed": str(root / "changed")}


def _edit(path: Path, **changes) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


BAD = {
    "a part missing (vae)": ["export", "{no-vae}", "--size", "32", "--frames", "9", "--out", "{w}/out"],
    "a part missing (tokenizer)": ["export", "{no-tokenizer}", "--size", "32", "--frames", "9", "--out", "{w}/out"],
    "text encoder of another width": ["export", "{wide-text}", "--size", "32", "--frames", "9", "--out", "{w}/out"],
    "VAE of other channels": ["export", "{vae-z4}", "--size", "32", "--frames", "9", "--out", "{w}/out"],
    "a scheduler the sampler lacks": ["export", "{ddim}", "--size", "32", "--frames", "9", "--out", "{w}/out"],
    "--text-length on a built-in": ["export", "vit-tiny", "--text-length", "16", "--out", "{w}/out"],
    "prompt longer than the text length": ["generate", "a red circle moving left on the beach at night in the street "
                                           "a blue square moving up", "{gen}"],
    "negative prompt too long": ["generate", PROMPT, "--negative-prompt", " ".join(["a red circle"] * 6), "{gen}"],
    "latents of the wrong shape": ["generate", PROMPT, "--latents", "{w}/wrong-shape.npy", "{gen}"],
    "latents of the wrong dtype": ["generate", PROMPT, "--latents", "{w}/float64.npy", "{gen}"],
    "latents not an array": ["generate", PROMPT, "--latents", "{w}/not-npy.npy", "{gen}"],
    "--lpl past the steps": ["generate", PROMPT, "--lpl", "4", "{gen}"],
    "--out of another format": ["generate", PROMPT, "--artifacts", "{export}", "--runtime", "onnxruntime", "--out",
                                "{w}/clip.avi"],
    "--tdtm-steps past the steps": ["generate", PROMPT, "--tdtm-steps", "5", "{gen}"],
    "--tome on a Wan export": ["generate", PROMPT, "--tome", "{gen}"],
    "--latents on video-dit-tiny": ["generate", PROMPT, "--latents", "{w}/float64.npy", "--out", "{w}/clip.gif"],
    "eager on a Wan export whose source is gone": ["generate", PROMPT, "--artifacts", "{gone}", "--runtime", "eager",
                                                   "--steps", "2", "--out", "{w}/clip.npy"],
    "eager on a Wan export whose source changed": ["generate", PROMPT, "--artifacts", "{changed}", "--runtime", "eager",
                                                   "--steps", "2", "--out", "{w}/clip.npy"],
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(exported, tmp_path_factory, monkeypatch, capfd, name):
    _, pipe_dir, out, latents = exported
    w = tmp_path_factory.getbasetemp() / "wan-bad"
    w.mkdir(exist_ok=True)
    shape = np.load(latents).shape
    np.save(w / "wrong-shape.npy", np.zeros((1, 8, 5, 4, 4), np.float32))
    np.save(w / "float64.npy", np.zeros(shape, np.float64))
    (w / "not-npy.npy").write_text("not an array")
    names = {**{k: str(v) for k, v in _bad_folders(tmp_path_factory.getbasetemp() / "wan-bad-folders", pipe_dir).items()},
             **_moved_sources(tmp_path_factory.getbasetemp() / "wan-bad-sources", out),
             "w": str(w), "export": str(out),
             "gen": f"--artifacts {out} --runtime onnxruntime --steps 4 --out {w}/clip.npy"}
    argv = [part for a in BAD[name] for part in (a.format(**names).split() if a == "{gen}" else [a.format(**names)])]
    monkeypatch.chdir(w)
    before = _snapshot(w), _snapshot(out)
    code = _run(argv)
    err = capfd.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("tomobile: error:"), err
    assert (_snapshot(w), _snapshot(out)) == before, "something was written"
    assert not os.path.exists(w / "out")
