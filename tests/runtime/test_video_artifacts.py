"""Generation from an export folder loads only the denoiser variants the run uses, and names a
damaged one in one line (issue 13, bug 6: truncated variants)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fakes import fake_video_export

from tomobile.cli.main import main
from tomobile.runtime.sampler import LeapConfig, SamplerConfig
from tomobile.runtime.video import RuntimeKind, artifact_runtime, needed_variants


@pytest.fixture
def export(tmp_path: Path) -> Path:
    folder = fake_video_export(tmp_path / "video")
    path = folder / "denoiser_tdtm.onnx"
    path.write_bytes(path.read_bytes()[:40])  # truncated after the export
    return folder


@pytest.mark.parametrize("cfg,spatial,expected", [
    (SamplerConfig(steps=10), False, ["denoiser"]),
    (SamplerConfig(steps=10, tdtm_steps=10), False, ["denoiser_tdtm"]),
    (SamplerConfig(steps=10, tdtm_steps=4), True, ["denoiser_tdtm_tome", "denoiser_tome"]),
    (SamplerConfig(steps=10, tdtm_steps=5, leap=LeapConfig.parse("4")), False, ["denoiser_tdtm"]),
])
def test_needed_variants(cfg, spatial, expected):
    assert needed_variants(cfg, spatial) == expected


def test_a_damaged_variant_the_run_does_not_use_is_never_opened(export: Path, tmp_path: Path, capsys):
    rt = artifact_runtime(export, RuntimeKind.ONNXRUNTIME)
    assert sorted(rt.denoisers) == ["denoiser", "denoiser_tdtm", "denoiser_tdtm_tome", "denoiser_tome"]
    out = tmp_path / "clip.npy"
    assert main(["-q", "generate", "a red circle moving left", "--runtime", "onnxruntime", "--artifacts", str(export),
                 "--steps", "3", "--out", str(out)]) == 0
    assert np.load(out).shape == (8, 32, 32, 3)
    assert "variants used: denoiser;" in capsys.readouterr().out


def test_a_damaged_variant_the_run_needs_stops_it_in_one_line(export: Path, tmp_path: Path, capsys):
    out = tmp_path / "clip.npy"
    assert main(["generate", "a red circle moving left", "--runtime", "onnxruntime", "--artifacts", str(export),
                 "--steps", "3", "--tdtm-steps", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "denoiser_tdtm.onnx does not match its sha256" in err[0]
    assert not out.exists()


def test_a_variant_whose_checksum_matches_but_does_not_load_is_named(export: Path, tmp_path: Path, capsys):
    from tomobile.runtime.manifest import sha256_path

    manifest = json.loads((export / "manifest.json").read_text())
    for a in manifest["artifacts"]:
        a["sha256"] = sha256_path(export / a["path"])
    (export / "manifest.json").write_text(json.dumps(manifest))
    assert main(["generate", "x", "--runtime", "onnxruntime", "--artifacts", str(export), "--steps", "3",
                 "--tdtm-steps", "3", "--out", str(tmp_path / "clip.npy")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tomobile: error: onnxruntime cannot load")
    assert "denoiser_tdtm.onnx" in err[0]


@pytest.mark.parametrize("prompt,unknown", [("a purple hexagon moving left", ["'purple'", "'hexagon'"]), ("", []),
                                            ("ein roter Kreis", ["'ein'", "'roter'", "'kreis'"])])
def test_out_of_vocabulary_prompt_gets_one_note(export: Path, tmp_path: Path, capsys, prompt, unknown):
    assert main(["-q", "generate", prompt, "--runtime", "onnxruntime", "--artifacts", str(export), "--steps", "3",
                 "--out", str(tmp_path / "clip.npy")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tomobile: note: video-dit-tiny knows only")
    assert all(word in err[0] for word in unknown)


def test_known_prompt_gets_no_note_and_the_clip_has_umask_modes(export: Path, tmp_path: Path, capsys):
    import os
    import stat

    old = os.umask(0o022)
    try:
        assert main(["-q", "generate", "a red circle moving left", "--runtime", "onnxruntime", "--artifacts",
                     str(export), "--steps", "3", "--out", str(tmp_path / "clip.gif")]) == 0
    finally:
        os.umask(old)
    assert capsys.readouterr().err == ""
    assert stat.S_IMODE((tmp_path / "clip.gif").stat().st_mode) == 0o644
