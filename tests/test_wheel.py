"""A wheel built from the tree works on its own: built with pip (no editable install), installed
with --no-deps into a fresh venv that sees the pinned dependencies (the same torch) through a .pth
file pointing at this environment's site-packages, then `tomobile models` and an eager
`tomobile generate` (video-dit-tiny, whose checkpoint must ship as package data) run from a folder
outside the repository."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(argv: list, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_the_wheel_installs_and_runs_outside_the_repo(tmp_path):
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w", dist, ROOT],
         cwd=tmp_path)
    (wheel,) = dist.glob("tomobile-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "tomobile/graphs/models/weights/video_dit_tiny.safetensors" in names
    # Every package folder in the tree ships: a new subpackage missing from pyproject.toml fails here.
    packages = sorted(str(init.parent.relative_to(ROOT)) for top in ("graphs", "export", "runtime", "cli")
                      for init in (ROOT / top).rglob("__init__.py"))
    assert "export/passes" in packages
    missing = {f"tomobile/{p}/__init__.py" for p in packages} - set(names)
    assert not missing, f"packages missing from the wheel (list them in pyproject.toml): {sorted(missing)}"

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp_path)
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--quiet", wheel], cwd=tmp_path)
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path).stdout.strip())
    # The pinned dependencies from this environment; its editable tomobile finder is a .pth file
    # there, which Python does not run for a folder added by another .pth, so it stays out.
    (site / "_tomobile_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    where = _run([python, "-c", "import tomobile.graphs, tomobile.cli; print(tomobile.graphs.__file__)"], work, env)
    assert Path(where.stdout.strip()).is_relative_to(site), where.stdout

    models = _run([venv / "bin" / "tomobile", "models"], work, env)
    assert "video-dit-tiny" in models.stdout and "vit-tiny" in models.stdout
    gen = _run([venv / "bin" / "tomobile", "-q", "generate", "a red circle moving left", "--steps", "3",
                "--out", "clip.gif"], work, env)
    assert (work / "clip.gif").stat().st_size > 0
    assert "runtime eager: 3 denoiser calls" in gen.stdout, gen.stdout
