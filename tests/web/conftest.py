"""Shared pieces of the web tests: where web_demo/ is and the node binary (make test-web installs it)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

WEB_DEMO = Path(__file__).resolve().parents[2] / "web_demo"


def node_binary() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed; `make test` / `make test-web` install it (Debian nodejs)")
    return node
