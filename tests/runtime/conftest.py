"""Fixtures of the runtime tests: the native engine, built once per session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from needs import require_tool

from tomobile.runtime.native_engine import build


@pytest.fixture(scope="session")
def native() -> Path:
    """The engine, built (or brought up to date) as `make native` does; skipped under plain pytest
    where the C++ toolchain or its Debian packages are missing (`make native` installs them)."""
    present = all(shutil.which(t) for t in ("cmake", "g++")) and all(
        Path(h).is_file() for h in ("/usr/include/nlohmann/json.hpp", "/usr/include/openssl/evp.h"))
    require_tool(present, "cmake, g++, nlohmann-json3-dev and libssl-dev are needed; `make native` installs them")
    return build()
