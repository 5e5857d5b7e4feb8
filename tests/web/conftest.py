"""Shared pieces of the web tests: web_demo/, node, the exports the page runs on (made once per
session, ONNX only), and local servers for the page (plain, and cross-origin isolated)."""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from needs import require_tool

WEB_DEMO = Path(__file__).resolve().parents[2] / "web_demo"
# Figures the web tests measured, printed after the run (pytest_terminal_summary below).
FIGURES: list[str] = []


CHROMIUM = Path("/usr/bin/chromium")


def node_binary() -> str:
    node = shutil.which("node")
    require_tool(node is not None, "node is not installed; `make test` / `make test-web` install it (Debian nodejs)")
    return node


def require_web_setup() -> None:
    """node, and npm ci and the vendor step ran (make test-web does both)."""
    node_binary()
    for path in ("node_modules/playwright-core", "node_modules/@huggingface/tokenizers", "vendor/ort.wasm.min.mjs"):
        require_tool((WEB_DEMO / path).exists(),
                     f"web_demo/{path} is missing; run `make test-web` (npm ci + npm run vendor) first")


@pytest.fixture(scope="session")
def web_tools() -> None:
    """Checked before any export a web test needs (list it first among a fixture's arguments)."""
    require_web_setup()


@pytest.fixture(scope="session")
def browser_tools(web_tools) -> None:
    require_tool(CHROMIUM.exists(), f"Chromium is not installed at {CHROMIUM}; `make test-web` installs it (Debian chromium)")


def cli(*argv: str) -> str:
    """`tomobile ARGV` in this process; returns what it printed; fails the test on a non-zero exit."""
    from tomobile.cli.main import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["-q", *argv])
    assert code == 0, f"tomobile {' '.join(argv)} exited {code}:\n{out.getvalue()}"
    return out.getvalue()


# `video_export` (video-dit-tiny as ONNX with test_vectors/contract.json) is in tests/conftest.py: one
# export per session, shared with tests/android/.


@pytest.fixture(scope="session")
def minilm_export(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("web-exports") / "minilm-l6"
    cli("export", "minilm-l6", "--format", "onnx", "--out", str(out))
    return out


def altered_copy(src: Path, dst: Path, victim: str) -> Path:
    """`src` as links, except `victim`: a copy with one byte flipped in the middle."""
    dst.mkdir(parents=True)
    for path in src.rglob("*"):
        rel = path.relative_to(src)
        if path.is_dir():
            (dst / rel).mkdir(parents=True, exist_ok=True)
        elif str(rel) != victim:
            (dst / rel).symlink_to(path)
    data = bytearray((src / victim).read_bytes())
    data[len(data) // 2] ^= 0x01
    (dst / victim).write_bytes(bytes(data))
    return dst


@contextlib.contextmanager
def serving(mounts: dict[str, Path], isolate: bool = False) -> Iterator[str]:
    """web_demo/ and the export folders (at /exports/NAME/) on 127.0.0.1; yields the base URL."""
    args = [node_binary(), "tools/serve.js", "--port", "0"] + (["--isolate"] if isolate else [])
    for name, path in mounts.items():
        args += ["--mount", f"{name}={path}"]
    proc = subprocess.Popen(args, cwd=WEB_DEMO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        if not line.startswith("serving "):
            raise RuntimeError(f"serve.js did not start: {line} {proc.stderr.read()}")
        yield line.removeprefix("serving ")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def pytest_terminal_summary(terminalreporter) -> None:
    if FIGURES:
        terminalreporter.write_sep("-", "web_demo figures")
        for line in FIGURES:
            terminalreporter.write_line(line)
