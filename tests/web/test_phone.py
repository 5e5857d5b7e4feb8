"""web_demo/ used as a phone would (tools/phone_check.js, playwright-core, headless Chromium): a 390 x 844
touch viewport with a mobile user agent, one browser profile across visits.

- generation under 4x CPU throttling (DevTools protocol) with inference in the page's worker: no task
  of the page's main thread takes more than MAX_BLOCK_MS of that thread's CPU time (a trace of its
  tasks; Chromium's throttling makes a task use `rate` times its CPU time, so this is the block on a
  4x slower CPU, while wall time on a busy shared machine also holds other processes' turns); the
  clip has the asked number of denoiser calls, and the page loaded the int8 text encoder. Wall-clock
  long tasks and gaps between animation frames, generating and idle, are reported beside it;
- a generation is cancelled between denoiser calls;
- a second visit (browser closed and opened again on the same profile) downloads no model bytes
  (Cache Storage, keyed by sha256); the clear button empties the cache;
- validate mode on the export's files picked flat (bare names, as phones without webkitdirectory give
  them): every test-vector row of every ONNX artifact passes, as `tomobile validate` found;
- screenshots at 390 x 844 during and after generation.
`make test-web` prints the line `web phone: longest main-thread block ...` from these runs.
"""

from __future__ import annotations

import json
import statistics
import struct
import subprocess

import pytest

from .conftest import FIGURES, WEB_DEMO, node_binary, require_web_setup, serving

RESULTS = WEB_DEMO / "test-results"
SHOTS = {"during": RESULTS / "web_phone_generating.png", "after": RESULTS / "web_phone_done.png"}
MAX_BLOCK_MS = 100.0  # the issue's bound on one main-thread block during generation
THROTTLE = 4  # CPU slowdown, Chromium DevTools' "4x slowdown"
STEPS = 6  # denoiser calls of the measured generation (few: the test stays short)
MB = 1e6


@pytest.fixture(scope="session")
def phone(video_export, tmp_path_factory) -> dict:
    """One phone_check.js run over the shared video-dit-tiny export; its report."""
    require_web_setup()
    work = tmp_path_factory.mktemp("phone")
    RESULTS.mkdir(exist_ok=True)
    flat = sorted(str(p) for p in video_export.rglob("*") if p.is_file())
    with serving({"video": video_export}) as base:
        job = {"chromium": "/usr/bin/chromium", "userDataDir": str(work / "profile"), "base": base, "export": "exports/video/",
               "steps": STEPS, "throttle": THROTTLE, "trace": True, "flatFiles": flat, "screenshots": {k: str(v) for k, v in SHOTS.items()}}
        (work / "job.json").write_text(json.dumps(job))
        subprocess.run([node_binary(), "tools/phone_check.js", str(work / "job.json"), str(work / "out.json")],
                       cwd=WEB_DEMO, check=True, timeout=1800)
    report = json.loads((work / "out.json").read_text())
    manifest = json.loads((video_export / "manifest.json").read_text())
    onnx = [a for a in manifest["artifacts"] if a["format"] == "onnx"]
    report["model_bytes"] = {a["path"]: a["bytes"] for a in onnx}
    # a graph whose weights are shared reads them from its group's .onnx.data (docs/shared_weights.md)
    report["weights_of"] = {a["path"]: a["weights"] for a in onnx if "weights" in a}
    report["manifest"] = manifest
    return report


def _long_task_ms(watch: dict) -> float:
    """The longest main-thread task (wall time) the Long Tasks API saw (it reports tasks >= 50 ms; 0 when none)."""
    return max((duration for _, duration in watch["tasks"]), default=0.0)


def _block_ms(phone: dict) -> float:
    """The longest main-thread task's CPU time during generation, under the throttling."""
    return phone["generate"]["mainThread"]["maxCpuMs"]


def _frame_gap_ms(watch: dict) -> float:
    return max(watch["gaps"][1:])  # the first gap spans the monitor's start


def test_generation_keeps_the_main_thread_free_under_throttling(phone):
    gen, idle = phone["generate"], phone["idle"]
    assert gen["state"] == "done", gen["error"]
    result = gen["result"]
    assert result["calls"] == STEPS and len(result["callMs"]) == STEPS
    assert len(gen["gaps"]) > 10 and len(idle["gaps"]) > 10, "the animation-frame monitor did not run"
    main = gen["mainThread"]
    assert main["thread"] and main["count"] > 50, main  # the trace saw the page's main thread at work
    assert _block_ms(phone) <= MAX_BLOCK_MS, f"a main-thread task took {_block_ms(phone):.0f} ms CPU (> {MAX_BLOCK_MS} ms): {main}"
    assert phone["first"]["load"]["textEncoder"]["precision"] == "int8"
    assert phone["first"]["load"]["textEncoder"]["path"] == "text_encoder.int8.onnx"


def test_a_generation_is_cancelled_between_denoiser_calls(phone):
    cancel = phone["cancel"]
    assert cancel["state"] == "cancelled" and cancel["cancelled"] == 1, cancel
    done = int(cancel["status"].split("after ")[1].split(" of")[0])
    assert 1 <= done < 30, cancel["status"]


def test_second_visit_downloads_no_model_bytes(phone):
    first, second = phone["first"], phone["second"]
    assert first["state"] == second["state"] == "ready", (first["error"], second["error"])
    loaded = {phone["first"]["load"]["textEncoder"]["path"], *(f"{v}.onnx" for v in phone["manifest"]["variants"])}
    weights = {phone["weights_of"][p]["path"]: phone["weights_of"][p]["bytes"] for p in loaded if p in phone["weights_of"]}
    assert weights, "the video denoisers share one weights file"  # each shared file is fetched once
    assert first["net"]["modelBytes"] == sum(phone["model_bytes"][p] for p in loaded) + sum(weights.values())
    assert second["net"]["modelRequests"] == 0 and second["net"]["modelBytes"] == 0, second["net"]["urls"]
    manifest_bytes = second["load"]["downloaded"]  # manifest.json, fetched on every visit
    assert manifest_bytes < 100_000 and second["load"]["fromCache"] + manifest_bytes == first["load"]["downloaded"]
    assert second["net"]["bytes"] < MB, second["net"]["urls"]  # manifest.json and 304s only
    assert phone["cleared"].startswith("Cache: 0 verified file(s)")


def test_flat_file_picking_validates_with_test_vectors(phone):
    flat = phone["flat"]
    assert flat["state"] == "done", flat["error"]
    manifest, report = phone["manifest"], flat["report"]
    onnx = {a["path"] for a in manifest["artifacts"] if a["format"] == "onnx"}
    cases = {"seeded", "real"}  # test-vector rows; the companion's pipeline rows are Python's alone
    python_rows = {(c["artifact"], c["case"], c["output"]) for c in manifest["validation"]["checks"]
                   if c["artifact"] in onnx and c["case"] in cases}
    assert {(r["artifact"], r["case"], r["output"]) for r in report["rows"]} == python_rows
    assert report["passed"] and flat["text"].splitlines()[-1].startswith(f"validation PASSED: {len(python_rows)} pass")


def test_phone_screenshots(phone):
    for path in SHOTS.values():
        header = path.read_bytes()[:24]
        assert header[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", header[16:24]) == (390, 844), path


def test_no_page_errors(phone):
    for phase, log in phone["errors"].items():
        assert log["pageErrors"] == [] and log["consoleErrors"] == [], (phase, log)


def test_phone_figures_line(phone):
    """The line `make test-web` prints, from the runs above; the first visit holds the model files."""
    gen, idle, first, second = phone["generate"], phone["idle"], phone["first"]["net"], phone["second"]["net"]
    call_ms = statistics.median(gen["result"]["callMs"][1:])
    line = (f"web phone: longest main-thread block {_block_ms(phone):.0f} ms, first visit {first['bytes'] / MB:.1f} MB, "
            f"second visit {second['bytes'] / MB:.1f} MB, wasm ms/call {call_ms:.0f}")
    FIGURES.append(line)
    FIGURES.append(f"  ({THROTTLE}x CPU throttling; block = the longest main-thread task's CPU time; wall clock on this machine: "
                   f"longest task {_long_task_ms(gen):.0f} ms generating, {_long_task_ms(idle):.0f} ms idle, longest gap between "
                   f"animation frames {_frame_gap_ms(gen):.0f} / {_frame_gap_ms(idle):.0f} ms; ms/call: median of a {STEPS}-step "
                   f"clip in the worker; first visit {first['modelBytes'] / MB:.1f} MB model files)")
    (RESULTS / "phone.json").write_text(json.dumps({"line": line, "generate": {k: gen[k] for k in ("gaps", "tasks", "frames", "mainThread")},
                                                    "idle": idle, "first": first, "second": second}, indent=1))
    assert first["bytes"] >= first["modelBytes"] > 100 * second["bytes"]


@pytest.mark.slow  # WebGPU on SwiftShader (a CPU Vulkan): 30-60 s per denoiser call on the shared 2-core machine
def test_webgpu_on_a_software_adapter_matches_python(video_export, tmp_path):
    """?backend=webgpu in headless Chromium with SwiftShader's adapter: a clip against ONNX Runtime in
    Python with the same (int8) text encoder, PSNR >= 40 dB."""
    import numpy as np

    from tomobile.runtime.sampler import SamplerConfig
    from tomobile.runtime.video import RuntimeKind, artifact_runtime, generate
    from tomobile.runtime.video_eval import psnr

    require_web_setup()
    prompt, steps = "a red circle moving left", 3
    with serving({"video": video_export}) as base:
        job = {"chromium": "/usr/bin/chromium", "userDataDir": str(tmp_path / "profile"), "base": base, "export": "exports/video/",
               "steps": steps, "prompt": prompt, "seed": "0", "phases": ["webgpu"]}
        (tmp_path / "job.json").write_text(json.dumps(job))
        subprocess.run([node_binary(), "tools/phone_check.js", str(tmp_path / "job.json"), str(tmp_path / "out.json")],
                       cwd=WEB_DEMO, check=True, timeout=3600)
    gpu = json.loads((tmp_path / "out.json").read_text())["webgpu"]
    assert gpu["adapter"] and gpu["state"] == "done", gpu
    assert gpu["info"].startswith("onnxruntime-web") and " webgpu in a worker" in gpu["info"]
    manifest = json.loads((video_export / "manifest.json").read_text())
    companion = next(a for a in manifest["artifacts"] if a.get("companion_of") and a["part"] == "text_encoder")
    rt = artifact_runtime(video_export, RuntimeKind.ONNXRUNTIME, text_artifact=companion)
    python = generate(rt, prompt, 0, SamplerConfig(steps=steps)).frames
    r = gpu["result"]
    db = psnr(python, np.asarray(r["frames"], np.float32).reshape(r["shape"]))
    FIGURES.append(f"WebGPU (SwiftShader, {gpu['adapter']}): {steps}-step clip vs Python PSNR {db:.1f} dB, "
                   f"{statistics.median(r['callMs']):.0f} ms/call")
    assert db >= 40.0
