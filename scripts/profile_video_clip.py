"""Where an end-to-end `video-dit-tiny` clip spends its time on ONNX Runtime (docs/video.md).

    TOMOBILE_THREADS=1 python scripts/profile_video_clip.py ARTIFACTS [--prompts 4] [--seeds 1]

For the 30-step baseline and LPL 15 + TDTM 15, every clip of the first prompts and seeds is timed
in parts: the text encoder (tokenizer + one call), each denoiser call (wall time of session.run),
and the rest of the sampling loop (the sampler's numpy work). A second pass over the same calls
with ONNX Runtime's profiler splits a denoiser call into the time inside its kernels and the
per-call overhead around them (input binding, output allocation, Python). CFG needs no split:
the exported denoiser runs cond and uncond as one batch of 2 in one call.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from tomobile.runtime.runners.onnxruntime import OnnxRunner
from tomobile.runtime.sampler import LeapConfig, SamplerConfig
from tomobile.runtime.video import RuntimeKind, artifact_runtime, generate
from tomobile.runtime.video_eval import PROMPTS, warm_up


def _timed(fn, log: list[float]):
    def run(*args):
        start = time.perf_counter()
        out = fn(*args)
        log.append(time.perf_counter() - start)
        return out

    return run


def profile_settings(artifacts: Path, prompts: int, seeds: int) -> dict:
    """Per setting: ms per clip in text encoder, denoiser calls and the sampler's own work."""
    rt = artifact_runtime(artifacts, RuntimeKind.ONNXRUNTIME)
    warm_up(rt)
    base = SamplerConfig()
    settings = {"full": base, "lpl15+tdtm15": replace(base, leap=LeapConfig.parse("15", base.leap.similarity),
                                                      tdtm_steps=15)}
    encode_log: list[float] = []
    rt.encode = _timed(rt.encode, encode_log)
    call_logs = {name: [] for name in rt.denoisers}
    rt.denoisers = {name: _timed(rt.denoisers[name], call_logs[name]) for name in rt.denoisers}
    parts = {s: {"clip": [], "text": [], "calls": [], "sampler": [], "n_calls": []} for s in settings}
    for prompt in PROMPTS[:prompts]:
        for seed in range(seeds):
            for name, cfg in settings.items():  # interleaved, as `tomobile eval video` does
                for log in (encode_log, *call_logs.values()):
                    log.clear()
                start = time.perf_counter()
                gen = generate(rt, prompt, seed, cfg)
                clip = time.perf_counter() - start
                calls = sum(sum(log) for log in call_logs.values())
                p = parts[name]
                p["clip"].append(clip)
                p["text"].append(sum(encode_log))
                p["calls"].append(calls)
                p["sampler"].append(gen.seconds - calls)
                p["n_calls"].append(gen.result.calls)
    return {s: {k: statistics.median(v) * (1 if k == "n_calls" else 1e3) for k, v in p.items()}
            for s, p in parts.items()}


def call_overhead(artifacts: Path, stem: str, runs: int = 20) -> dict:
    """One denoiser's ms per call: the video runtime's wall time per call (as a clip calls it)
    against the sum of ONNX Runtime's kernel times per call (a profiled session, same threads)."""
    rt = artifact_runtime(artifacts, RuntimeKind.ONNXRUNTIME)
    y, mask = rt.encode(PROMPTS[0])
    args = [np.zeros(rt.shape, np.float32), np.array([0.5], np.float32), y, mask, np.array([4.0], np.float32)]
    run = rt.denoisers[stem]
    for _ in range(3):
        run(*args)
    walls = []
    for _ in range(runs):
        start = time.perf_counter()
        run(*args)
        walls.append(time.perf_counter() - start)
    with tempfile.TemporaryDirectory() as tmp:
        threads = int(os.environ.get("TOMOBILE_THREADS", "0")) or None
        runner = OnnxRunner(artifacts / f"{stem}.onnx", threads=threads, profile=Path(tmp) / "p")
        for _ in range(runs):
            runner.run(args)
        events = json.loads(Path(runner.end_profiling()).read_text())
    kernel = [e["dur"] for e in events if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time")]
    per_call_kernel = sum(kernel) / runs / 1e3
    wall = statistics.median(walls) * 1e3
    return {"wall_ms": wall, "kernel_ms": per_call_kernel, "overhead_ms": wall - per_call_kernel}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifacts", type=Path)
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=1)
    args = parser.parse_args()
    result = {"settings": profile_settings(args.artifacts, args.prompts, args.seeds),
              "calls": {stem: call_overhead(args.artifacts, stem) for stem in ("denoiser", "denoiser_tdtm")}}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
