"""web_demo runs a WanPipeline export end to end in headless Chromium (tools/browser_check.js):
tokenizer, text encoder, the transformer steps with WanPipeline's guidance on the export's
scheduler (Euler; and UniPC on a copy of the export with Wan's shipped UniPC config), TDTM steps,
LPL, the VAE decoder, from a given latents file (`?latents=URL`). Each clip is compared with
`tomobile generate ... --runtime onnxruntime --latents L.npy` on the same export: PSNR >= 40 dB.
The gate can fail: Python's clips for a wrong step count and a wrong shift are below it."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from wan_fixture import PROMPT, scheduler_config

from tomobile.runtime.video_eval import clip_psnr

from .conftest import CHROMIUM, FIGURES, WEB_DEMO, cli, node_binary, serving

MIN_PSNR_DB = 40.0
SCHEDULER_FILE = "scheduler/scheduler_config.json"
# (name, export, steps, lpl, tdtm steps): the page's runs and Python's, setting for setting
RUNS = (("euler_tdtm2", "wan", 4, "off", 2), ("euler_lpl3", "wan", 6, "3", 0), ("unipc_tdtm2", "wan-unipc", 4, "off", 2))


def with_scheduler(src: Path, config: dict, dst: Path) -> Path:
    """A copy of the export `src` whose scheduler config is `config` (its manifest's sha256 updated)."""
    shutil.copytree(src, dst)
    text = json.dumps(config, indent=2, sort_keys=True) + "\n"
    (dst / SCHEDULER_FILE).write_text(text)
    manifest = json.loads((dst / "manifest.json").read_text())
    manifest["files"][SCHEDULER_FILE] = hashlib.sha256(text.encode()).hexdigest()
    shift = config.get("flow_shift", config.get("shift", 1.0))
    manifest["pipeline"]["scheduler"].update({"class": config["_class_name"], "shift": float(shift)})
    (dst / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return dst


def _form(steps: int, lpl: str, tdtm: int) -> dict:
    return {"prompt": PROMPT, "seed": "0", "steps": steps, "lpl": lpl if lpl in ("off", "auto") else "fixed",
            "lplStep": None if lpl in ("off", "auto") else int(lpl), "tdtm": tdtm, "spatial": False}


@pytest.fixture(scope="module")
def exports(wan_export, tmp_path_factory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("wan-web")
    latents = work / "latents"
    latents.mkdir()
    shape = json.loads((wan_export / "manifest.json").read_text())["pipeline"]["latent_shape"]
    np.save(latents / "latents.npy", torch.randn(shape, generator=torch.Generator().manual_seed(11)).numpy())
    unipc = with_scheduler(wan_export, scheduler_config("unipc"), work / "wan-unipc")
    shift5 = with_scheduler(wan_export, {**scheduler_config("euler"), "shift": 5.0}, work / "wan-shift5")
    return {"wan": wan_export, "wan-unipc": unipc, "wan-shift5": shift5, "latents": latents}


@pytest.fixture(scope="module")
def page_runs(browser_tools, exports, tmp_path_factory) -> dict[str, dict]:
    """The three clips in one Chromium run; the page's result per run name."""
    work = tmp_path_factory.mktemp("browser-wan")
    mounts = {k: v for k, v in exports.items() if k != "wan-shift5"}
    with serving(mounts) as base:
        tasks = [{"name": name, "kind": "generate", "runs": [_form(steps, lpl, tdtm)],
                  "url": f"{base}?export=exports/{export}/&latents=/exports/latents/latents.npy"}
                 for name, export, steps, lpl, tdtm in RUNS]
        job = {"chromium": str(CHROMIUM), "userDataDir": str(work / "profile"), "screenshot": str(work / "shot.png"),
               "tasks": tasks}
        (work / "job.json").write_text(json.dumps(job))
        subprocess.run([node_binary(), "tools/browser_check.js", str(work / "job.json"), str(work / "out.json")],
                       cwd=WEB_DEMO, check=True, timeout=900)
    report = json.loads((work / "out.json").read_text())
    assert report["pageErrors"] == [] and report["consoleErrors"] == [] and report["foreignRequests"] == []
    return {t["name"]: t["runs"][0] for t in report["tasks"]}


def python_clip(export: Path, latents: Path, out: Path, steps: int, lpl: str, tdtm: int) -> tuple[np.ndarray, str]:
    text = cli("generate", PROMPT, "--artifacts", str(export), "--runtime", "onnxruntime", "--latents", str(latents),
               "--steps", str(steps), "--lpl", lpl, "--tdtm-steps", str(tdtm), "--out", str(out))
    return np.load(out), text


def _page_frames(run: dict) -> np.ndarray:
    assert "error" not in run, run
    return np.asarray(run["frames"], np.float32).reshape(run["shape"])


@pytest.mark.parametrize("name,export,steps,lpl,tdtm", RUNS)
def test_page_clip_equals_tomobile_generate(page_runs, exports, tmp_path, name, export, steps, lpl, tdtm):
    run = page_runs[name]
    frames = _page_frames(run)
    py, text = python_clip(exports[export], exports["latents"] / "latents.npy", tmp_path / "clip.npy", steps, lpl, tdtm)
    assert frames.shape == py.shape == (9, 32, 32, 3)
    db, diff = clip_psnr(py, frames), np.abs(py.astype(np.float64) - frames)
    exact = "inf" if not diff.any() else f"{10 * np.log10(1 / np.mean(diff**2)):.1f}"  # uncapped, peak 1
    leap = "no leap" if run["leapAt"] is None else f"leap at step {run['leapAt']}"
    FIGURES.append(f"wan {name} ({run['config']['scheduler']}): browser vs `tomobile generate --runtime onnxruntime` "
                   f"from the same latents: PSNR {exact} dB, max abs {diff.max():.1e}, "
                   f"{run['calls']} transformer calls ({run['mergedCalls']} TDTM), {leap}")
    assert f"({run['calls']} transformer calls" in text and f"{run['steps']} velocity evaluations" in text
    assert leap in text
    assert db >= MIN_PSNR_DB, f"{name}: PSNR {db:.1f} dB < {MIN_PSNR_DB}"


def test_the_gate_fails_for_a_wrong_step_count_or_shift(page_runs, exports, tmp_path):
    """The page's 4-step Euler clip against Python's with 5 steps, and with shift 5 instead of 3."""
    frames = _page_frames(page_runs["euler_tdtm2"])
    latents = exports["latents"] / "latents.npy"
    steps5, _ = python_clip(exports["wan"], latents, tmp_path / "steps5.npy", 5, "off", 2)
    shift5, _ = python_clip(exports["wan-shift5"], latents, tmp_path / "shift5.npy", 4, "off", 2)
    wrong = {"5 steps instead of 4": clip_psnr(steps5, frames), "shift 5 instead of 3": clip_psnr(shift5, frames)}
    FIGURES.append("wan euler_tdtm2, the gate's failing cases: " + ", ".join(f"{k}: PSNR {v:.1f} dB" for k, v in wrong.items()))
    assert all(db < MIN_PSNR_DB for db in wrong.values()), wrong
