"""Shared fixtures: one small merged export, made once per test session (about a minute on 2 cores)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def vit_tiny_export(tmp_path_factory) -> Path:
    """vit-tiny with tome:r=8 exported to all three formats and validated, via the CLI."""
    from tomobile.export.cli import main

    out = tmp_path_factory.mktemp("exports") / "vit-tiny"
    code = main(["-q", "export", "vit-tiny", "--merge", "tome:r=8", "--format", "onnx,coreml,executorch",
                 "--out", str(out)])
    assert code == 0
    return out


@pytest.fixture(scope="session")
def micro_split_export(tmp_path_factory) -> Path:
    """video-dit-micro exported with --split blocks to ONNX and ExecuTorch and validated, via the CLI."""
    from tomobile.export.cli import main

    out = tmp_path_factory.mktemp("exports") / "video-dit-micro"
    assert main(["-q", "export", "video-dit-micro", "--split", "blocks", "--format", "onnx,executorch",
                 "--out", str(out)]) == 0
    return out
