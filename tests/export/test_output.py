"""--out: what may be replaced, what is refused, modes, and no leftovers after errors and signals
(issue 13, bug 3 and file modes)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tomobile.export.output import OutputError, Staging, check_out_dir, discard, finalize, make_staging


def _export_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "manifest.json").write_text(json.dumps({"tomobile_manifest": 1}))
    (path / "model.onnx").write_bytes(b"old")
    return path


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_new_empty_and_earlier_export_folders_are_accepted(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert check_out_dir(Path("new/deeper")) == tmp_path / "new" / "deeper"
    (tmp_path / "empty").mkdir()
    assert check_out_dir(Path("empty")) == tmp_path / "empty"
    assert check_out_dir(_export_folder(tmp_path / "earlier")) == tmp_path / "earlier"


def _place(root: Path, kind: str) -> Path:
    """An --out of the given kind under `root` (the current folder)."""
    if kind == "user folder":
        (root / "mine").mkdir()
        (root / "mine" / "notes.txt").write_text("mine")
        return root / "mine"
    if kind in ("file", "under a file"):
        (root / "file").write_text("x")
        return root / "file" if kind == "file" else root / "file" / "sub"
    return {"cwd": root, "cwd's parent": root.parent, "root": Path("/")}[kind]


@pytest.mark.parametrize("kind,needle", [
    ("user folder", "not a tomobile export"), ("file", "is a file"), ("under a file", "which is a file"),
    ("cwd", "the current folder"), ("cwd's parent", "the current folder or holds it"), ("root", "file-system root"),
])
def test_what_is_not_an_export_is_refused(tmp_path: Path, monkeypatch, kind, needle):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OutputError, match=needle):
        check_out_dir(_place(tmp_path, kind))


def test_force_replaces_a_folder_or_file_but_never_the_model_or_cwd(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    assert check_out_dir(Path("mine"), force=True) == tmp_path / "mine"
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    for out in (model, tmp_path):
        with pytest.raises(OutputError, match="model folder|current folder"):
            check_out_dir(out, force=True, keep=(model,))


def test_read_only_parent_is_refused_in_one_line(tmp_path: Path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):  # root writes anywhere: use a folder the kernel refuses instead
            ro = Path("/sys")
        with pytest.raises(OutputError, match="permission denied|Operation not permitted|cannot write"):
            staging = make_staging(check_out_dir(ro / "sub" / "out"))
            discard(staging)
        assert not (ro / "sub").exists()
    finally:
        (tmp_path / "ro").chmod(0o755)


def test_finalize_replaces_an_export_and_leaves_nothing_hidden(tmp_path: Path):
    out = _export_folder(tmp_path / "out")
    staging = make_staging(check_out_dir(out))
    (staging.path / "manifest.json").write_text(json.dumps({"tomobile_manifest": 1, "new": True}))
    finalize(staging)
    assert json.loads((out / "manifest.json").read_text())["new"] and not (out / "model.onnx").exists()
    assert _leftovers(tmp_path) == []


def test_forced_file_is_replaced_without_an_old_copy_left(tmp_path: Path):
    out = tmp_path / "out"
    out.write_text("a file")
    staging = make_staging(check_out_dir(out, force=True))
    finalize(staging)
    assert out.is_dir() and _leftovers(tmp_path) == []


def test_discard_removes_staging_and_the_parents_made_for_it(tmp_path: Path):
    staging = make_staging(tmp_path / "a" / "b" / "out")
    assert staging.made == [tmp_path / "a", tmp_path / "a" / "b"] and staging.path.is_dir()
    discard(staging)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_finalized_export_has_umask_modes(tmp_path: Path, mask):
    old = os.umask(mask)
    try:
        staging = make_staging(tmp_path / "out")
        inner = staging.path / "model.mlpackage"
        inner.mkdir(mode=0o700)  # what tempfile-based writers leave
        (inner / "model.mlmodel").write_bytes(b"x")
        (inner / "model.mlmodel").chmod(0o600)
        finalize(staging)
    finally:
        os.umask(old)
    out = tmp_path / "out"
    for path, base in ((out, 0o777), (out / "model.mlpackage", 0o777), (out / "model.mlpackage" / "model.mlmodel", 0o666)):
        assert stat.S_IMODE(path.stat().st_mode) == base & ~mask, path


@pytest.mark.parametrize("sig,code,word", [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")])
def test_signal_during_export_removes_staging_and_says_one_line(tmp_path: Path, sig, code, word):
    out = tmp_path / "out"
    # A test run started in the background (`make test &`) inherits SIGINT ignored, and Python then
    # ignores Ctrl-C as well, as a Unix tool should; the child here gets the default disposition back.
    proc = subprocess.Popen([sys.executable, "-m", "tomobile.cli", "-q", "export", "vit-tiny", "--format", "onnx",
                             "--out", str(out)], stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 300
    while not any(p.name.startswith(".out.staging") for p in tmp_path.iterdir()):
        assert proc.poll() is None and time.monotonic() < deadline, "export ended before its staging folder appeared"
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code
    assert err.strip().splitlines() == [f"tomobile: error: {word} ({'SIGTERM' if code == 143 else 'Ctrl-C'})"], err
    assert list(tmp_path.iterdir()) == []


def test_staging_is_a_hidden_sibling(tmp_path: Path):
    staging = make_staging(tmp_path / "out")
    assert isinstance(staging, Staging) and staging.path.parent == tmp_path and staging.path.name.startswith(".out.staging.")
    discard(staging)
