"""Issue 18 (hardening, round 2): behaviour that the table-driven test (test_cli_errors.py) cannot
show with one bad argument: a non-finite clip, prompts that are not text, and mode options that
have no effect in a run."""

from __future__ import annotations

import argparse
import json
import re

import numpy as np
import pytest

from tomobile.cli.cmd_generate import sampler_config, unused_modes
from tomobile.cli.main import main
from tomobile.runtime.video import (
    NonFiniteClip,
    PromptError,
    RuntimeKind,
    VideoRuntime,
    check_prompt,
    generate,
    save_clip,
)


def _nan_runtime() -> VideoRuntime:
    """A runtime whose denoiser overflows, as a float32 guidance of 1e30 does."""
    shape = (1, 3, 2, 4, 4)

    def encode(caption: str):
        return np.zeros((1, 4, 8), np.float32), np.ones((1, 4), np.float32)

    def denoise(x, t, states, mask, guidance):
        return np.full(shape, np.inf, np.float32)

    return VideoRuntime(RuntimeKind.EAGER, encode, {"denoiser": denoise}, shape, {})


def test_a_non_finite_clip_is_an_error_and_never_a_file(tmp_path):
    """Item 7: `--guidance 1e308` wrote an all-NaN clip with exit 0."""
    with pytest.raises(NonFiniteClip, match="NaN or inf"):
        generate(_nan_runtime(), "a red circle moving left", 0, sampler_config(2, "off", 0, 4.0))
    for suffix in (".npy", ".gif"):
        with pytest.raises(NonFiniteClip):
            save_clip(np.full((2, 4, 4, 3), np.nan, np.float32), tmp_path / f"clip{suffix}")
    assert list(tmp_path.iterdir()) == []


def test_a_prompt_with_invalid_utf8_names_the_byte():
    """Item 4: Python turns invalid argv bytes into lone surrogates; tokenizers raised a TypeError."""
    assert check_prompt("a red circle") == "a red circle"
    with pytest.raises(PromptError, match="byte 0xff at position 6"):
        check_prompt(b"a red \xff circle".decode("utf-8", "surrogateescape"))


def _args(**given) -> argparse.Namespace:
    return argparse.Namespace(**{"lpl_similarity": None, "tdtm_positions": None, "tdtm_odd": None, **given})


def test_mode_options_without_effect_are_named():
    """Item 11: these were accepted and reported as in force."""
    plain = sampler_config(10, "off", 0, 4.0)
    assert unused_modes(_args(), plain, 8) == {}
    assert set(unused_modes(_args(lpl_similarity="full"), plain, 8)) == {"lpl_similarity"}
    assert unused_modes(_args(lpl_similarity="full"), sampler_config(10, "auto", 0, 4.0), 8) == {}
    assert set(unused_modes(_args(tdtm_positions="midpoint", tdtm_odd="keep"), plain, 8)) == {"tdtm_positions",
                                                                                            "tdtm_odd"}
    merged = sampler_config(10, "off", 2, 4.0)
    assert unused_modes(_args(tdtm_positions="midpoint"), merged, 8) == {}
    assert "odd frame count" in unused_modes(_args(tdtm_odd="keep"), merged, 8)["tdtm_odd"]
    assert unused_modes(_args(tdtm_odd="keep"), merged, 7) == {}


def test_generate_says_in_one_note_line_what_has_no_effect_and_does_not_report_it(tmp_path, capfd):
    out = tmp_path / "clip.npy"
    assert main(["-q", "generate", "a red circle moving left", "--out", str(out), "--steps", "2",
                 "--lpl-similarity", "full", "--tdtm-positions", "midpoint"]) == 0
    captured = capfd.readouterr()
    notes = [line for line in captured.err.splitlines() if line.startswith("tomobile: note: no effect")]
    assert len(notes) == 1 and "--lpl-similarity needs --lpl auto" in notes[0] and "--tdtm-positions" in notes[0]
    assert "lpl similarity not used" in captured.out and "tdtm positions not used" in captured.out
    assert np.isfinite(np.load(out)).all()


# Issue 33 (hardening, round 3): what the table (test_cli_errors.py) cannot show with one bad argument.

def test_the_manifest_holds_finite_numbers_only(tmp_path):
    """Item 9: a DiffRate count of 1e400 reached the manifest as `Infinity` (not JSON for the native
    engine, the page or the apps) while Python's reader took it."""
    from fakes import fake_export

    from tomobile.runtime.manifest import ManifestError, write_manifest
    from tomobile.runtime.manifest_reader import load_manifest

    for bad in (float("inf"), float("nan")):
        with pytest.raises(ValueError, match="not JSON compliant"):
            write_manifest(tmp_path, {"counts": [65, bad]})
        assert list(tmp_path.iterdir()) == []  # nothing written, not even the temporary file
    folder = fake_export(tmp_path / "exp")
    text = (folder / "manifest.json").read_text()
    for constant in ("NaN", "Infinity", "-Infinity"):
        (folder / "manifest.json").write_text(text[:-1] + f', "x": {constant}}}')
        with pytest.raises(ManifestError, match=f"{constant} is not JSON"):
            load_manifest(folder)


def test_diffrate_counts_are_integers(tmp_path):
    """Items 9, 10: 65.5 was accepted and recorded; a list where a map belongs raised a TypeError."""
    from tomobile.graphs.methods.diffrate import read_compression_rate
    from tomobile.graphs.spec.grammar import SpecError

    path = tmp_path / "rate.json"
    good = {"prune_kept_num": "[65, 60]", "merge_kept_num": "[65, 55]"}
    path.write_text(json.dumps({"M": {"1": good}}))
    assert read_compression_rate(path, "M", "1") == ((65, 60), (65, 55))
    for table, says in (({"M": {"1": {**good, "prune_kept_num": "[65.5, 60]"}}}, "holds 65.5; kept counts are integers"),
                        ({"M": {"1": {**good, "merge_kept_num": "[65, true]"}}}, "holds true"),
                        ({"M": {"1": {**good, "prune_kept_num": "[65, 1e400]"}}}, "holds Infinity"),
                        ({"M": {"1": {**good, "prune_kept_num": "{}"}}}, "holds {}"),
                        ({"M": {"1": ["x"]}}, "lacks a prune_kept_num list"),
                        ({"M": ["1"]}, "is a JSON list, not a map of flops"),
                        ([["M"]], "holds a JSON list")):
        path.write_text(json.dumps(table))
        with pytest.raises(SpecError, match=re.escape(says)):
            read_compression_rate(path, "M", "1")


def test_tomesd_options_without_effect_are_named(monkeypatch, capfd, tmp_path):
    """Item 17: seed without use_rand and use_rand at batch 1 exported silently."""
    from tomobile.cli import cmd_export
    from tomobile.graphs.methods.tomesd import TomesdConfig, unused_options

    assert unused_options(TomesdConfig(), 1) == [] and unused_options(TomesdConfig(use_rand=True), 2) == []
    assert unused_options(TomesdConfig(use_rand=True, seed=5), 2) == []
    (seed,) = unused_options(TomesdConfig(seed=5), 2)
    assert seed.startswith("seed=5 needs use_rand=1")
    assert "odd batch never randomises" in unused_options(TomesdConfig(use_rand=True), 1)[0]

    class Stop(Exception):
        pass

    def stop(*args, **kwargs):
        raise Stop

    monkeypatch.setattr(cmd_export, "export_model", stop)  # the notes come before the export
    for spec, says in (("tomesd:ratio=0.5,seed=5", "seed=5 needs use_rand=1"),
                       ("tomesd:ratio=0.5,use_rand=1", "use_rand=1 at batch 1"),
                       ("drop:tomesd:ratio=0.5,use_rand=1,seed=3", "use_rand=1 at batch 1")):
        with pytest.raises(Stop):
            main(["-q", "export", "sd-unet-tiny", "--merge", spec, "--format", "onnx", "--out", str(tmp_path / "out")])
        notes = [line for line in capfd.readouterr().err.splitlines() if line.startswith("tomobile: note:")]
        assert len(notes) == 1 and notes[0].startswith("tomobile: note: no effect in this run: ") and says in notes[0]
    with pytest.raises(Stop):  # with --cfg (batch 2) use_rand draws: no note
        main(["-q", "export", "sd-unet-tiny", "--merge", "tomesd:ratio=0.5,use_rand=1", "--cfg", "--format", "onnx",
              "--out", str(tmp_path / "out")])
    assert "tomobile: note:" not in capfd.readouterr().err


def test_pitome_refuses_more_than_half_not_a_ratio_below_one_half():
    """Item 19: the docs said ratios below 0.5 are refused; the check is r <= T/2 (and stays)."""
    from tomobile.graphs.methods.registry import make_plan
    from tomobile.graphs.spec.config import MergeConfig
    from tomobile.graphs.spec.grammar import SpecError

    assert make_plan(MergeConfig.parse("pitome:ratio=0.49"), 4, 65, True).r[0] == 32  # floor(64 - 31.36) = 32 = T/2
    with pytest.raises(SpecError, match=re.escape("r = floor(T - T * ratio) = 35 of T = 64 tokens; at most half "
                                                  "(r <= 32) may merge")):
        make_plan(MergeConfig.parse("pitome:ratio=0.45"), 4, 65, True)


def test_stream_suggests_an_export_that_works(tmp_path):
    """Item 20: on a folder that is not split, --stream suggested `tomobile export vit-tiny --split
    blocks`, which is refused; a video model's folder gets its own command."""
    from fakes import fake_export

    from tomobile.runtime.streaming import StreamError, open_split

    with pytest.raises(StreamError) as err:
        open_split(fake_export(tmp_path / "vit"), "onnxruntime")
    assert "vit-tiny --split" not in str(err.value) and "`tomobile export video-dit-micro --split blocks" in str(err.value)
    with pytest.raises(StreamError, match="`tomobile export video-dit-micro --split blocks --out "):
        open_split(fake_export(tmp_path / "micro", model="video-dit-micro"), "onnxruntime")


def test_an_edited_record_of_a_shared_part_file_is_caught(tmp_path):
    """Item 6: two split parts list one file; the second's sha256 edited was never checked (the file
    was hashed once, for the first record), and an edit of the first named the file as 'a different part'."""
    from fakes import fake_export

    from tomobile.runtime.manifest import sha256_path
    from tomobile.runtime.manifest_reader import read_manifest
    from tomobile.runtime.streaming import StreamError, open_split
    from tomobile.runtime.validate import ValidationError, verify_checksums

    folder = fake_export(tmp_path / "exp")
    manifest = json.loads((folder / "manifest.json").read_text())
    io = manifest["parts"]["model"]
    record = {"path": "model.onnx", "sha256": sha256_path(folder / "model.onnx"), "total_bytes": 15}
    manifest["split"] = {"sequences": {"model": ["a", "b"]}, "parts": [
        {"name": name, **io, "files": {"onnx": dict(record)}} for name in ("a", "b")]}
    for edited in (0, 1):
        split = json.loads(json.dumps(manifest["split"]))
        split["parts"][edited]["files"]["onnx"]["sha256"] = "0" * 64
        (folder / "manifest.json").write_text(json.dumps({**manifest, "split": split}))
        with pytest.raises(StreamError, match="model.onnx does not match its sha256"):
            open_split(folder, "onnxruntime")
        with pytest.raises(ValidationError, match="model.onnx does not match its sha256"):
            verify_checksums(read_manifest(folder))
