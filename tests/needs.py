"""Tests that need a tool beyond Python (node, a JDK, Chromium, the npm packages) skip with the
reason when it is missing, so plain `pytest` works on a Python-only machine. `make test` (and so
CI) sets TOMOBILE_REQUIRE_ALL=1, under which a missing tool fails the test instead."""

from __future__ import annotations

import os

import pytest


def require_tool(present: bool, message: str) -> None:
    """Skip (or, under TOMOBILE_REQUIRE_ALL=1, fail) with `message` unless `present`."""
    if present:
        return
    if os.environ.get("TOMOBILE_REQUIRE_ALL", "") not in ("", "0"):
        pytest.fail(f"{message} (TOMOBILE_REQUIRE_ALL=1: a missing tool is a failure)")
    pytest.skip(message)
