"""The private APIs the runners call (runtime/runners/fences.py): each fence holds on the pinned
stack and names the pin it was checked on, so a version bump fails here, loudly, until the private
call is checked again; and with a fence closed, each runner takes its public path and still works."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tomobile.runtime.runners import coreai, fences
from tomobile.runtime.runners.executorch import executorch_threads, set_executorch_threads
from tomobile.runtime.runners.fences import FENCES, Fence
from tomobile.runtime.runners.ort_shared import OrtCapiError, SharedWeightSessions
from tomobile.runtime.runners.xnnpack_options import set_weight_cache, weight_cache_enabled

ROOT = Path(__file__).resolve().parents[2]


def _pins() -> dict[str, str]:
    """package -> its version specifier in pyproject.toml ('==1.5.1'); python -> requires-python."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {"python": project["requires-python"]}
    for dep in project["dependencies"]:
        name, spec = re.match(r"([A-Za-z0-9_.-]+)\s*(.*)", dep).groups()
        pins[name.lower()] = spec.replace(" ", "")
    return pins


@pytest.mark.parametrize("fence", FENCES, ids=lambda f: f"{f.package}:{f.what.split(' ')[0]}")
def test_every_fence_holds_on_the_installed_stack(fence: Fence):
    assert fence.holds(), (
        f"{fence.package} is now {fence.installed()}, but {fence.what} was checked on {fence.verified}. The runners "
        f"now take the fallback ({fence.fallback}). Check the private call against {fence.installed()} (or a public "
        "API that does the same), then update the fence in runtime/runners/fences.py.")


@pytest.mark.parametrize("fence", FENCES, ids=lambda f: f"{f.package}:{f.what.split(' ')[0]}")
def test_every_fence_names_the_pinned_version(fence: Fence):
    """A pin moved in pyproject.toml fails here before any install does."""
    pin = _pins()[fence.package]
    if fence.package == "python":
        assert pin == f">={fence.verified},<3.{int(fence.verified.split('.')[1]) + 1}", pin
    else:
        assert pin in (f"=={fence.verified}", f"=={fence.verified}.*"), (
            f"pyproject.toml pins {fence.package}{pin}; the fence for {fence.what} was checked on {fence.verified}")


def test_a_fence_matches_release_segments_only(monkeypatch):
    fence = Fence("a call", "onnxruntime", "1.32", "the public way")
    for installed, holds in (("1.32.0", True), ("1.32.4", True), ("1.32", True), ("1.320.0", False),
                             ("1.33.0", False), (None, False)):
        monkeypatch.setattr(Fence, "installed", lambda self, v=installed: v)
        assert fence.holds() is holds, installed


@pytest.fixture
def fenced_off(monkeypatch, caplog):
    """Every fence closed, as on a stack whose versions moved."""
    monkeypatch.setattr(Fence, "installed", lambda self: "0.0")
    monkeypatch.setattr(fences, "_WARNED", set())
    caplog.set_level(logging.INFO, logger=fences.__name__)
    return caplog


def test_ort_shared_weights_refuse_and_generate_opens_plain_sessions(fenced_off, tmp_path):
    from tomobile.runtime.video import _shared_onnx

    data = tmp_path / "w.onnx.data"
    data.write_bytes(b"\0" * 64)
    with pytest.raises(OrtCapiError, match="checked"):
        SharedWeightSessions(data)
    assert _shared_onnx({}, tmp_path / "g.onnx", data, None) is None  # the caller opens a plain session
    assert "each session packs its own copy" in fenced_off.text


def test_xnnpack_weight_cache_stays_off(fenced_off):
    assert set_weight_cache(True) is False and weight_cache_enabled() is False
    assert "the weight cache stays off" in fenced_off.text


def test_executorch_threads_stay_as_they_are(fenced_off):
    now = executorch_threads()
    assert set_executorch_threads(now + 1) == now == executorch_threads()
    assert f"ExecuTorch runs at {now} threads, not {now + 1}" in fenced_off.text


class _Asset:
    """Stands in for an AIModelAsset: its private compile must not be called behind a closed fence."""

    def __init__(self) -> None:
        self.calls: list[Path] = []

    def _write_odix(self, folder: Path) -> None:
        self.calls.append(folder)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the compile cache is Linux's")
def test_coreai_compiles_through_the_public_api(fenced_off, tmp_path):
    (tmp_path / "main.mlirb").write_bytes(b"x")
    asset = _Asset()
    assert coreai._compiled_form(asset, tmp_path) is None and not asset.calls  # executable() compiles
    assert "AIModelAsset.executable()" in fenced_off.text


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the compile cache is Linux's")
def test_coreai_compile_cache_is_used_where_the_fence_holds(tmp_path):
    (tmp_path / "main.mlirb").write_bytes(b"x")
    asset = _Asset()
    folder = coreai._compiled_form(asset, tmp_path)
    assert folder is not None and asset.calls == [folder]
    assert coreai._compiled_form(asset, tmp_path) == folder and len(asset.calls) == 1  # compiled once


_EXIT = """
import atexit, sys
import coreai.runtime  # the runtime loaded: exit_process would take the fast exit
from tomobile.runtime.runners import coreai, fences
if sys.argv[1] == "closed":
    coreai.EXIT_HANDLERS = fences.Fence("exit", "python", "0.0", "sys.exit")
atexit.register(lambda: print("handler ran", flush=True))
sys.exit = lambda code: (print("sys.exit", code, flush=True), exit(code))
coreai.exit_process(3)
"""


@pytest.mark.parametrize("state", ["open", "closed"])
def test_exit_process_takes_sys_exit_behind_a_closed_fence(state: str):
    proc = subprocess.run([sys.executable, "-c", _EXIT, state], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3 and "handler ran" in proc.stdout
    assert ("sys.exit 3" in proc.stdout) is (state == "closed")

