"""web_demo/ end to end in headless Chromium (tools/browser_check.js, playwright-core), one browser run:

- video mode makes the contract's two replay settings; the clips match `tomobile generate
  --runtime onnxruntime` (same prompt, seed, settings) at PSNR >= 40 dB, with the same calls and leap
  (the page runs the export's int8 text encoder, Python the fp32 one: about 50 dB apart, docs/web_phone.md);
- validate mode passes every row for vit-tiny and minilm-l6 exports (max abs <= 1e-4), the same
  rows `tomobile validate` checked;
- an altered model file is refused by name (video mode and validate mode);
- no page error, console error or request to anything but 127.0.0.1;
- a 390 x 844 screenshot; ms per denoiser call at 1 and 2 wasm threads (cross-origin isolated page)
  next to ONNX Runtime in Python, measured in the same run (printed; speed is never asserted).
"""

from __future__ import annotations

import json
import os
import statistics
import struct
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from tomobile.runtime.video_eval import clip_psnr

from .conftest import CHROMIUM, FIGURES, WEB_DEMO, altered_copy, cli, node_binary, require_web_setup, serving

RESULTS = WEB_DEMO / "test-results"
SCREENSHOT = RESULTS / "web_demo_390x844.png"
MIN_PSNR_DB = 40.0
BENCH_RUNS = 2  # 30-step generations per thread count; the first call of each page is warm-up


def _form(settings: dict, prompt: str, seed: str) -> dict:
    """A replay's settings as the page's form values."""
    lpl = settings["lpl"]
    return {"prompt": prompt, "seed": seed, "steps": settings["steps"], "lpl": lpl if lpl in ("off", "auto") else "fixed",
            "lplStep": None if lpl in ("off", "auto") else int(lpl), "tdtm": settings["tdtm_steps"], "spatial": settings["spatial"]}


def _bench_run(contract: dict) -> dict:
    """The first replay's prompt and seed, 30 steps without LPL, TDTM or ToMe: every call on `denoiser`."""
    replay = contract["replay"][0]
    return _form({**replay["settings"], "lpl": "off", "tdtm_steps": 0, "spatial": False}, replay["prompt"], replay["seed"])


def _job(base: str, isolated: str, contract: dict, work: Path) -> dict:
    video = f"{base}?export=exports/video/"
    runs = [_form(r["settings"], r["prompt"], r["seed"]) for r in contract["replay"]]
    bench = [_bench_run(contract)] * BENCH_RUNS
    return {
        "chromium": str(CHROMIUM), "userDataDir": str(work / "chromium-profile"), "screenshot": str(SCREENSHOT),
        "tasks": [
            {"name": "clips", "kind": "generate", "url": video, "runs": runs, "screenshot": True},
            {"name": "validate vit-tiny", "kind": "validate", "url": f"{base}?mode=validate&export=exports/vit-tiny/"},
            {"name": "validate minilm-l6", "kind": "validate", "url": f"{base}?mode=validate&export=exports/minilm-l6/"},
            # On the other origin, before it caches anything: a file held in Cache Storage under the
            # manifest's sha256 would be used instead of the altered download (the page runs only
            # bytes that match the hash either way).
            {"name": "altered video", "kind": "refused", "url": f"{isolated}?export=exports/video-altered/"},
            {"name": "altered vit-tiny", "kind": "validate", "url": f"{isolated}?mode=validate&export=exports/vit-altered/"},
            {"name": "1 thread", "kind": "generate", "url": f"{isolated}?export=exports/video/&threads=1", "runs": bench},
            {"name": "2 threads", "kind": "generate", "url": f"{isolated}?export=exports/video/&threads=2", "runs": bench},
        ],
    }


@pytest.fixture(scope="session")
def contract(web_tools, video_export) -> dict:
    return json.loads((video_export / "test_vectors" / "contract.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def browser(browser_tools, video_export, minilm_export, vit_tiny_export, contract, tmp_path_factory) -> dict:
    """Every page task in one Chromium run; returns browser_check.js's report, tasks by name."""
    require_web_setup()
    work = tmp_path_factory.mktemp("browser")
    RESULTS.mkdir(exist_ok=True)
    mounts = {"video": video_export, "vit-tiny": vit_tiny_export, "minilm-l6": minilm_export,
              "video-altered": altered_copy(video_export, work / "video-altered", "denoiser_tome.onnx"),
              "vit-altered": altered_copy(vit_tiny_export, work / "vit-altered", "model.onnx")}
    with serving(mounts) as base, serving(mounts, isolate=True) as isolated:
        (work / "job.json").write_text(json.dumps(_job(base, isolated, contract, work)))
        subprocess.run([node_binary(), "tools/browser_check.js", str(work / "job.json"), str(work / "out.json")],
                       cwd=WEB_DEMO, check=True, timeout=3600)
    report = json.loads((work / "out.json").read_text())
    report["by_name"] = {t["name"]: t for t in report["tasks"]}
    return report


@pytest.fixture(scope="session")
def python_clips(video_export, contract, tmp_path_factory) -> list[dict]:
    """`tomobile generate --runtime onnxruntime` for each replay's prompt, seed and settings."""
    out = tmp_path_factory.mktemp("python-clips")
    clips = []
    for r in contract["replay"]:
        s, npy = r["settings"], out / f"{r['name']}.npy"
        text = cli("generate", r["prompt"], "--runtime", "onnxruntime", "--artifacts", str(video_export), "--seed", r["seed"],
                   "--steps", str(s["steps"]), "--lpl", s["lpl"], "--tdtm-steps", str(s["tdtm_steps"]), "--out", str(npy),
                   *(["--tome"] if s["spatial"] else []))
        clips.append({"frames": np.load(npy), "text": text})
    return clips


def test_page_makes_the_clips_of_tomobile_generate(browser, python_clips, contract):
    runs = browser["by_name"]["clips"]["runs"]
    for replay, run, py in zip(contract["replay"], runs, python_clips, strict=True):
        assert "error" not in run, run
        frames = np.asarray(run["frames"], np.float32).reshape(run["shape"])
        db = clip_psnr(py["frames"], frames)  # peak 1, capped at 99 dB
        diff = np.abs(py["frames"].astype(np.float64) - frames)
        exact = "inf" if not diff.any() else f"{10 * np.log10(1 / np.mean(diff**2)):.1f}"
        leap = "no leap" if run["leapAt"] is None else f"leap at step {run['leapAt']}"
        FIGURES.append(f"{replay['name']}: browser vs `tomobile generate --runtime onnxruntime`: PSNR {exact} dB, "
                       f"max abs {diff.max():.1e} ({run['calls']} calls, {leap}, {run['msPerCall']:.0f} ms/call in the page)")
        assert f"{run['calls']} denoiser calls ({run['mergedCalls']} TDTM-merged)" in py["text"]
        assert leap in py["text"] and run["leapAt"] == replay["leap_at"]
        assert db >= MIN_PSNR_DB, f"{replay['name']}: PSNR {db:.1f} dB < {MIN_PSNR_DB}"


@pytest.mark.parametrize("name,export", [("vit-tiny", "vit_tiny_export"), ("minilm-l6", "minilm_export")])
def test_validate_mode_passes_every_onnx_row(browser, request, name, export):
    task = browser["by_name"][f"validate {name}"]
    assert "error" not in task, task
    report, manifest = task["report"], json.loads((request.getfixturevalue(export) / "manifest.json").read_text())
    onnx = {a["path"] for a in manifest["artifacts"] if a["format"] == "onnx"}
    python_rows = {(c["artifact"], c["case"], c["output"], tuple(c["shape"])) for c in manifest["validation"]["checks"]
                   if c["artifact"] in onnx}
    page_rows = {(r["artifact"], r["case"], r["output"], tuple(r["shape"])) for r in report["rows"]}
    assert page_rows == python_rows and report["passed"]
    assert all(r["status"] == "pass" and r["maxAbsError"] <= 1e-4 for r in report["rows"])
    assert {s["artifact"] for s in report["skipped"]} == {a["path"] for a in manifest["artifacts"]} - onnx
    assert task["text"].splitlines()[-1].startswith(f"validation PASSED: {len(python_rows)} pass, 0 fail")
    FIGURES.append(f"validate mode, {name}: {task['text'].splitlines()[-1]} "
                   f"(worst max abs {max(r['maxAbsError'] for r in report['rows']):.2e})")


def test_altered_model_files_are_refused_by_name(browser):
    video = browser["by_name"]["altered video"]
    assert video["state"] == "error" and video["visible"]
    assert video["error"].startswith("Refused denoiser_tome.onnx: altered"), video["error"]
    vit = browser["by_name"]["altered vit-tiny"]
    assert vit["error"].startswith("Refused model.onnx: altered"), vit


def test_no_page_errors_console_errors_or_foreign_requests(browser):
    assert browser["pageErrors"] == [] and browser["consoleErrors"] == []
    assert browser["foreignRequests"] == [] and browser["requests"] > 20


def test_phone_size_screenshot(browser):
    header = SCREENSHOT.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", header[16:24]) == (390, 844)


def _python_call_ms(export: Path, threads: int, prompt: str) -> list[float]:
    """ms per denoiser call of ONNX Runtime in Python, 30-step generations, as the page's bench."""
    from tomobile.runtime.sampler import SamplerConfig
    from tomobile.runtime.video import RuntimeKind, VideoRuntime, artifact_runtime, generate

    old = os.environ.get("TOMOBILE_THREADS")
    os.environ["TOMOBILE_THREADS"] = str(threads)
    try:
        rt = artifact_runtime(export, RuntimeKind.ONNXRUNTIME)
    finally:
        os.environ.pop("TOMOBILE_THREADS") if old is None else os.environ.__setitem__("TOMOBILE_THREADS", old)
    times: list[float] = []
    run = rt.denoisers["denoiser"]

    def timed(*args):
        start = time.perf_counter()
        v = run(*args)
        times.append((time.perf_counter() - start) * 1000)
        return v

    timed_rt = VideoRuntime(rt.kind, rt.encode, {"denoiser": timed}, rt.shape)
    for _ in range(BENCH_RUNS):
        generate(timed_rt, prompt, 0, SamplerConfig(steps=30))
    return times[1:]


def test_wasm_threads_next_to_python(browser, video_export, contract):
    pages = {n: browser["by_name"][f"{n} thread{'s' if n > 1 else ''}"] for n in (1, 2)}
    for n, task in pages.items():
        assert all("error" not in r for r in task["runs"]), task
        assert all(r["isolated"] and r["threads"] == n for r in task["runs"])
    one, two = (np.asarray(pages[n]["runs"][-1]["frames"], np.float32) for n in (1, 2))
    assert clip_psnr(one, two) >= MIN_PSNR_DB
    page_ms = {n: statistics.median([ms for r in t["runs"] for ms in r["callMs"]][1:]) for n, t in pages.items()}
    prompt = contract["replay"][0]["prompt"]
    python_ms = {n: statistics.median(_python_call_ms(video_export, n, prompt)) for n in (1, 2)}
    figures = {"chromium_wasm_ms_per_call": page_ms, "python_onnxruntime_ms_per_call": python_ms,
               "calls_per_setting": sum(len(r["callMs"]) for r in pages[1]["runs"]), "runtime": pages[2]["info"]}
    (RESULTS / "figures.json").write_text(json.dumps(figures, indent=1))
    FIGURES.append("ms per denoiser call (median, 30-step clips, plain denoiser), measured in this run:")
    for n in (1, 2):
        FIGURES.append(f"  {n} thread(s): Chromium wasm {page_ms[n]:.1f} ms, ONNX Runtime in Python {python_ms[n]:.1f} ms "
                       f"(wasm / Python = {page_ms[n] / python_ms[n]:.2f})")
    FIGURES.append(f"  screenshot: {SCREENSHOT}")
