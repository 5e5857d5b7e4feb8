"""Shared fixtures: exports made once per test session (vit-tiny about a minute on 2 cores, video-dit-tiny a few)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def vit_tiny_export_run(tmp_path_factory) -> subprocess.CompletedProcess:
    """`tomobile export vit-tiny --merge tome:r=8` to all three formats, as a user runs it (a fresh
    process, progress bars on); its output folder is `.args[-1]`."""
    out = tmp_path_factory.mktemp("exports") / "vit-tiny"
    proc = subprocess.run([sys.executable, "-m", "tomobile.cli", "export", "vit-tiny", "--merge", "tome:r=8",
                           "--format", "onnx,coreml,executorch", "--out", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="session")
def vit_tiny_export(vit_tiny_export_run) -> Path:
    """vit-tiny with tome:r=8 exported to all three formats and validated, via the CLI."""
    return Path(vit_tiny_export_run.args[-1])


@pytest.fixture(scope="session")
def video_export(tmp_path_factory) -> Path:
    """video-dit-tiny as ONNX with test_vectors/contract.json, via the CLI (a few minutes on 2 cores).
    The app tests (tests/android, tests/web) share this one export."""
    from tomobile.cli.main import main

    out = tmp_path_factory.mktemp("app-exports") / "video-dit-tiny"
    assert main(["-q", "export", "video-dit-tiny", "--format", "onnx", "--out", str(out)]) == 0
    return out


def split_export(tmp_path_factory, model: str) -> Path:
    """`model` exported with --split blocks to ONNX and ExecuTorch and validated, via the CLI."""
    from tomobile.cli.main import main

    out = tmp_path_factory.mktemp("exports") / model
    assert main(["-q", "export", model, "--split", "blocks", "--format", "onnx,executorch", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def micro_split_export(tmp_path_factory) -> Path:
    """video-dit-micro split (one block pair 32 wide): seconds to export."""
    return split_export(tmp_path_factory, "video-dit-micro")


@pytest.fixture(scope="session")
def tiny_split_export(tmp_path_factory) -> Path:
    """video-dit-tiny split: the parts `generate --stream` runs by default."""
    return split_export(tmp_path_factory, "video-dit-tiny")


@pytest.fixture(scope="session")
def wan_export(tmp_path_factory) -> Path:
    """The small offline WanPipeline (tests/wan_fixture.py, Euler scheduler) exported with `--merge tdtm
    --format onnx` at 32x32, 9 frames, text length 16, via the CLI; it holds test_vectors/wan_contract.json.
    The app tests (tests/web, tests/android) share this one export (under a minute on 2 cores)."""
    from wan_fixture import WanParts, small_wan_pipeline

    from tomobile.cli.main import main

    root = tmp_path_factory.mktemp("wan-app-export")
    small_wan_pipeline(WanParts(scheduler="euler")).save_pretrained(str(root / "pipe"))
    out = root / "export"
    assert main(["-q", "export", str(root / "pipe"), "--size", "32x32", "--frames", "9", "--merge", "tdtm",
                 "--format", "onnx", "--text-length", "16", "--out", str(out)]) == 0
    return out
