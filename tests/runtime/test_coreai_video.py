"""Core AI runs the video model's parts: video-dit-micro's split parts chain and stream through
coreai-core's runtime (each asset loaded and released in turn), and `tomobile generate --runtime
coreai` gives ONNX Runtime's clip (video-dit-tiny, slow: its export takes minutes here)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tomobile.cli.main import main
from tomobile.runtime.manifest_reader import read_manifest
from tomobile.runtime.report import psnr
from tomobile.runtime.runners import artifact_runner, load_runner
from tomobile.runtime.sampler import LeapConfig, SamplerConfig
from tomobile.runtime.stream_video import streamed_runtime
from tomobile.runtime.streaming import BlockStreamer, open_split
from tomobile.runtime.video import RuntimeKind, VideoRuntime, generate


@pytest.fixture(scope="module")
def micro_coreai(tmp_path_factory) -> Path:
    """video-dit-micro with --split blocks as Core AI and ONNX assets, validated (chains included)."""
    out = tmp_path_factory.mktemp("exports") / "micro-coreai"
    assert main(["-q", "export", "video-dit-micro", "--split", "blocks", "--format", "coreai,onnx", "--out", str(out)]) == 0
    return out


def _vectors(folder: Path, variant: str) -> dict[str, np.ndarray]:
    data = np.load(folder / "test_vectors" / f"{variant}.npz")
    return {k.split(".", 2)[2]: data[k] for k in data.files if k.startswith("seeded.input.")}


def test_micro_split_exports_coreai_parts_with_numeric_chain_rows(micro_coreai: Path):
    manifest = json.loads((micro_coreai / "manifest.json").read_text())
    rows = manifest["validation"]["checks"]
    chains = [r for r in rows if r["artifact"].startswith("chain") and "(coreai)" in r["artifact"]]
    assets = [r for r in rows if r["artifact"].endswith(".aimodel")]
    assert chains and assets and all(r["status"] == "pass" for r in chains + assets)
    parts = manifest["split"]["parts"]
    assert all(p["files"]["coreai"]["path"].endswith(".aimodel") for p in parts)


def test_chained_coreai_parts_equal_the_monolithic_asset_one_part_at_a_time(micro_coreai: Path):
    split = open_split(micro_coreai, "coreai")
    streamer = BlockStreamer(split, split.largest().size, prefetch=False)  # one part loaded at a time
    for variant in ("denoiser_tome", "denoiser_tdtm_tome"):
        inputs = _vectors(micro_coreai, variant)
        artifact = read_manifest(micro_coreai).artifact("coreai", variant)
        mono = artifact_runner(micro_coreai, artifact)  # the variant's function in the shared asset
        expected = mono.run(list(inputs.values()))[0]
        mono.close()
        got = streamer(variant, inputs)
        assert got.shape == expected.shape and np.abs(got - expected).max() <= 1e-5
    assert all(s.parts_loaded == s.parts_run > 0 for s in streamer.stats)  # each part loaded, run, released
    streamer.close()


def test_streamed_coreai_clip_equals_onnx_runtime_clip(micro_coreai: Path):
    budget = 2 * open_split(micro_coreai, "coreai").largest().size
    rt, streamer = streamed_runtime(RuntimeKind.COREAI, micro_coreai, budget)
    ort = {v: load_runner("onnx", micro_coreai / f"{v}.onnx") for v in ("denoiser_tome", "denoiser_tdtm_tome")}
    ort_rt = VideoRuntime(RuntimeKind.ONNXRUNTIME, rt.encode, {v: (lambda *a, r=r: r.run(list(a))[0])
                                                               for v, r in ort.items()}, rt.shape)
    states = _vectors(micro_coreai, "denoiser_tome")
    cfg = SamplerConfig(steps=4, leap=LeapConfig.parse("off"), tdtm_steps=2)
    kwargs = {"states": (states["states"], states["mask"]), "spatial": True}
    core = generate(rt, "", 0, cfg, **kwargs).frames
    reference = generate(ort_rt, "", 0, cfg, **kwargs).frames
    streamer.close()
    assert psnr(reference, core) >= 40.0 and np.abs(core - reference).max() <= 1e-4
    assert all(s.parts_loaded > 0 for s in streamer.stats)


@pytest.mark.slow
def test_generate_runtime_coreai_equals_onnx_runtime_on_video_dit_tiny(tmp_path: Path, capsys):
    out = tmp_path / "vid"
    assert main(["-q", "export", "video-dit-tiny", "--format", "onnx,coreai", "--out", str(out)]) == 0
    clips = {}
    for runtime in ("onnxruntime", "coreai"):
        clip = tmp_path / f"{runtime}.npy"
        assert main(["-q", "generate", "a red circle moving left", "--runtime", runtime, "--artifacts", str(out),
                     "--out", str(clip)]) == 0
        clips[runtime] = np.load(clip)
    assert psnr(clips["onnxruntime"], clips["coreai"]) >= 40.0


def test_stream_bench_runs_coreai_modes_with_peak_rss(micro_coreai: Path):
    """`bench --stream --runtime coreai`: monolithic, streamed and streamed with prefetch, each in a
    fresh child that reports its peak RSS; every mode gives the monolithic asset's velocity."""
    from tomobile.runtime.stream_bench import Mode, run_bench

    split = open_split(micro_coreai, "coreai")
    variant = next(iter(split.sequences))
    small = 2 * split.largest().size
    modes = [Mode("coreai", False), Mode("coreai", True, False, small, "small"), Mode("coreai", True, True, small, "small")]
    mono, streamed, prefetched = run_bench(micro_coreai, variant, modes, 2, 1, progress=False)
    for r in (mono, streamed, prefetched):
        assert len(r.steps_s) == 2 and r.peak_rss > 0 and r.max_abs_err <= 1e-4
    assert streamed.loads_per_step > 0 and 0 < streamed.resident_max <= small


@pytest.mark.parametrize("with_coreai", [False, True])
def test_exit_process_keeps_the_code_and_runs_exit_handlers(with_coreai: bool, tmp_path: Path):
    """The CLI and the stream bench's children end through exit_process: with Core AI's runtime
    imported it skips the interpreter teardown (which the runtime's Swift threads can abort) but
    still runs Python's exit handlers and keeps the exit code; without it, it is sys.exit."""
    import subprocess
    import sys

    marker = tmp_path / "handler-ran"
    code = "\n".join([
        "import atexit, pathlib",
        *(["import coreai.runtime"] if with_coreai else []),
        f"atexit.register(lambda: pathlib.Path({str(marker)!r}).write_text('yes'))",
        "from tomobile.runtime.runners.coreai import exit_process",
        "print('before', flush=False)",
        "exit_process(3)",
        "print('after')",
    ])
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout.split() == ["before"]  # flushed on the way out; nothing after the call ran
    assert marker.read_text() == "yes"
