"""Seeded test vectors with clear merge decisions: recorded in the manifest, and a wrong artifact
(one that takes the merge decisions the other way) still fails validation on them."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

import tomobile.graphs.methods.merge as merge
import tomobile.graphs.methods.merge_indexed as merge_indexed
from tomobile.cli.main import main
from tomobile.graphs.methods.margins import MIN_MARGIN
from tomobile.runtime.manifest import load_manifest, sha256_path, write_manifest
from tomobile.runtime.validate import FAIL, margin_note, validate_dir


def _export(out: Path) -> dict:
    assert main(["-q", "export", "vit-tiny", "--merge", "tome:r=8", "--format", "onnx", "--out", str(out)]) == 0
    return load_manifest(out)


def test_wrong_merge_artifact_fails_on_clear_inputs(tmp_path: Path, monkeypatch):
    good = _export(tmp_path / "good")
    margins = good["parts"]["model"]["margins"]["seeded"]
    assert margins["clear"] and margins["smallest_gap"] >= MIN_MARGIN and margins["decisions"] == 36
    assert validate_dir(tmp_path / "good", progress=False).passed

    real_scores = merge.matching_scores

    def runner_up(*args, **kwargs) -> torch.Tensor:
        """Every source's best destination scores below its runner-up: the other merge choices."""
        scores = real_scores(*args, **kwargs)
        return scores - 4.0 * (scores == scores.amax(dim=-1, keepdim=True)).to(scores.dtype)

    monkeypatch.setattr(merge, "matching_scores", runner_up)
    monkeypatch.setattr(merge_indexed, "matching_scores", runner_up)
    _export(tmp_path / "flipped")  # passes against its own (flipped) eager vectors
    monkeypatch.undo()

    shutil.copy(tmp_path / "flipped" / "model.onnx", tmp_path / "good" / "model.onnx")
    entry = next(a for a in good["artifacts"] if a["format"] == "onnx")
    entry["sha256"] = sha256_path(tmp_path / "good" / "model.onnx")
    write_manifest(tmp_path / "good", good)
    report = validate_dir(tmp_path / "good", progress=False)
    rows = [c for c in report.checks if c.case == "seeded"]
    assert not report.passed and rows and all(c.status == FAIL for c in rows)
    assert all("flipping" not in c.note for c in rows)  # the inputs were clear: no near-tie excuse


def test_margin_note_only_for_unclear_cases():
    part = {"margins": {"seeded": {"smallest_gap": 2e-5, "min_margin": 1e-5, "site": "spatial.partner#2", "clear": True},
                        "real": {"smallest_gap": 2.4e-6, "min_margin": 1e-5, "site": "spatial.partner#2", "clear": False}}}
    assert margin_note(part, "seeded") == "" and margin_note({}, "seeded") == ""
    note = margin_note(part, "real")
    assert "2.4e-06 from flipping" in note and "spatial.partner#2" in note
