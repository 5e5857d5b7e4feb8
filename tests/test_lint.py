"""The house habits, run by `make test`: ruff (pyflakes, bugbear, import order) over the code, the tests
and the scripts, and mypy over the packages as the wheel names them (`tomobile.graphs`, ...).

The packages live in top-level folders that the wheel maps to `tomobile.*` (pyproject.toml's
package-dir), so mypy reads them through a folder of links named as the wheel names them. Modules
that do not yet type-check are listed in pyproject.toml's mypy overrides; every other module,
new ones included, must pass."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("graphs", "export", "runtime", "cli")


def _tool(module: str) -> None:
    if subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True).returncode:
        pytest.skip(f"{module} is in the dev extra that `make test` installs")


def test_ruff_finds_nothing():
    _tool("ruff")
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", *PACKAGES, "tests", "scripts"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_passes_on_the_packages(tmp_path):
    _tool("mypy")
    package = tmp_path / "tomobile"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in PACKAGES:
        (package / name).symlink_to(ROOT / name, target_is_directory=True)
    proc = subprocess.run([sys.executable, "-m", "mypy", "--config-file", ROOT / "pyproject.toml",
                           "--cache-dir", tmp_path / ".mypy_cache", "-p", "tomobile"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
