"""Issue 18 (hardening, round 2): behaviour that the table-driven test (test_cli_errors.py) cannot
show with one bad argument: a non-finite clip, prompts that are not text, and mode options that
have no effect in a run."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from tomobile.cli.cmd_generate import sampler_config, unused_modes
from tomobile.cli.main import main
from tomobile.runtime.video import (NonFiniteClip, PromptError, RuntimeKind, VideoRuntime, check_prompt, generate,
                                    save_clip)


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
