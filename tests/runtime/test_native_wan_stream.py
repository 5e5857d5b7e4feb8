"""`tomobile-native stream` on a Wan transformer's `--split blocks` export: the parts only (the
monolithic transformer is the eager reference, not exported), its inputs named as diffusers'
(hidden_states, timestep, encoder_hidden_states). The streamed chain equals the eager
transformer's test vectors, under a small budget and with every part loaded."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("diffusers")

from tomobile.cli.main import main  # noqa: E402


@pytest.fixture(scope="module")
def wan_split(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wan-split") / "export"
    assert main(["-q", "export", "wan-tiny", "--size", "32x48", "--frames", "9", "--split", "blocks",
                 "--format", "executorch", "--out", str(out)]) == 0
    return out


def stream(native: Path, folder: Path, tmp_path: Path, *args) -> tuple[subprocess.CompletedProcess, dict | None]:
    out = tmp_path / "stream.json"
    out.unlink(missing_ok=True)
    proc = subprocess.run([str(native), "stream", str(folder), "--steps", "3", "--threads", "1", "--json", str(out),
                           "-q", *map(str, args)], capture_output=True, text=True)
    return proc, json.loads(out.read_text()) if out.exists() else None


def test_streamed_parts_equal_the_eager_transformer(native, wan_split, tmp_path):
    manifest = json.loads((wan_split / "manifest.json").read_text())
    sizes = {p["name"]: p["files"]["executorch"]["total_bytes"] for p in manifest["split"]["parts"]}
    assert not any(a["part"] == "transformer" for a in manifest["artifacts"])
    runs = {}
    for name, budget in (("small", 2 * max(sizes.values())), ("all", sum(sizes.values()))):
        proc, out = stream(native, wan_split, tmp_path, "--memory-budget", budget)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        rows = out["check"]["rows"]
        assert [r["against"] for r in rows] == ["step 0 vs eager (test vectors)"]  # no monolithic program to run
        assert rows[0]["status"] == "pass" and 0 <= rows[0]["max_abs_error"] <= 1e-4
        assert all(s["parts_run"] == len(sizes) for s in out["steps"])
        runs[name] = out
    assert all(s["parts_loaded"] > 0 for s in runs["small"]["steps"][1:])  # streamed: parts load every step
    assert all(s["parts_loaded"] == 0 for s in runs["all"]["steps"][1:])  # resident: loaded once
    proc, _ = stream(native, wan_split, tmp_path, "--monolithic")
    assert proc.returncode == 2 and "exported as parts only" in proc.stderr
