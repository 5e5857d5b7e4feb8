"""Text-to-video generation for `video-dit-tiny` on eager PyTorch, ONNX Runtime or ExecuTorch.

One `VideoRuntime` = a text encoder callable and one denoiser callable per variant, all numpy in,
numpy out; `generate` drives them through runtime/sampler.py, so every runtime runs the same loop.
Artifacts come from `tomobile export video-dit-tiny` (text_encoder.*, denoiser*.*, tokenizer files,
manifest.json).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np

from .sampler import SampleResult, SamplerConfig, sample

log = logging.getLogger(__name__)

DenoiseFn = Callable[..., np.ndarray]  # (x, t, states, mask, guidance) -> velocity


class RuntimeKind(str, Enum):
    EAGER = "eager"
    ONNXRUNTIME = "onnxruntime"
    EXECUTORCH = "executorch"


@dataclass
class VideoRuntime:
    kind: RuntimeKind
    encode: Callable[[str], tuple[np.ndarray, np.ndarray]]  # caption -> states (1, L, Dy), mask (1, L)
    denoisers: dict[str, DenoiseFn]  # variant stem -> callable
    shape: tuple[int, ...]  # (1, 3, T, H, W)


def variant_name(merged: bool, spatial: bool) -> str:
    return "denoiser" + ("_tdtm" if merged else "") + ("_tome" if spatial else "")


def eager_runtime() -> VideoRuntime:
    import torch

    from tomobile.graphs.text_context import encode_captions
    from tomobile.graphs.video_zoo import VARIANTS, guided_velocity, load_video_dit

    model = load_video_dit()
    cfg = model.cfg

    def encode(caption: str) -> tuple[np.ndarray, np.ndarray]:
        states, mask = encode_captions([caption], cfg.caption_len)
        return states.numpy(), mask.numpy().astype(np.float32)

    def make(merge) -> DenoiseFn:
        @torch.no_grad()
        def run(x, t, states, mask, guidance):
            args = [torch.from_numpy(np.ascontiguousarray(a)) for a in (x, t, states, mask, guidance)]
            return guided_velocity(model, *args, merge).numpy()

        return run

    denoisers = {name: make(m) for name, m in VARIANTS.items()}
    return VideoRuntime(RuntimeKind.EAGER, encode, denoisers, (1, cfg.channels, cfg.frames, cfg.size, cfg.size))


def _tokenizer_encode(artifacts: Path, length: int) -> Callable[[str], tuple[np.ndarray, np.ndarray]]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(artifacts))

    def ids(caption: str) -> tuple[np.ndarray, np.ndarray]:
        enc = tok([caption], padding="max_length", truncation=True, max_length=length, return_tensors="np")
        return enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)

    return ids


def _session_runner(path: Path, kind: RuntimeKind) -> Callable[..., list[np.ndarray]]:
    if kind is RuntimeKind.ONNXRUNTIME:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        threads = int(os.environ.get("TOMOBILE_THREADS", "0"))
        if threads:
            opts.intra_op_num_threads = threads
        # A clip switches between five sessions (text encoder, denoiser variants), each with its own
        # thread pool. With spinning on, the pool of the session just left keeps a core busy while
        # the next one runs: the first TDTM call after an unmerged one took 1.37x its steady time,
        # and 30-step clips ran 1.5x slower on the shared 2-core machine (docs/video.md).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        names = [i.name for i in sess.get_inputs()]
        return lambda *arrays: sess.run(None, dict(zip(names, arrays)))
    import torch
    from executorch.runtime import Runtime

    method = Runtime.get().load_program(str(path)).load_method("forward")
    return lambda *arrays: [o.numpy() for o in method.execute([torch.from_numpy(np.ascontiguousarray(a)) for a in arrays])]


def artifact_runtime(artifacts: Path, kind: RuntimeKind) -> VideoRuntime:
    """Load text_encoder and every denoiser variant from an export folder."""
    import json

    ext = ".onnx" if kind is RuntimeKind.ONNXRUNTIME else ".pte"
    manifest_path = artifacts / "manifest.json"
    if not manifest_path.exists():
        raise FileNotFoundError(f"{manifest_path} not found; run `tomobile export video-dit-tiny --out {artifacts}` first")
    manifest = json.loads(manifest_path.read_text())
    mc = manifest.get("model_config") or manifest.get("pipeline", {}).get("model_config")
    if mc is None:
        mc = _find_key(manifest, "model_config")
    length = int(mc["caption_len"])
    shape = (1, int(mc["channels"]), int(mc["frames"]), int(mc["size"]), int(mc["size"]))
    ids = _tokenizer_encode(artifacts, length)
    text = _session_runner(artifacts / f"text_encoder{ext}", kind)

    def encode(caption: str) -> tuple[np.ndarray, np.ndarray]:
        input_ids, mask = ids(caption)
        return text(input_ids, mask)[0].astype(np.float32), mask.astype(np.float32)

    denoisers: dict[str, DenoiseFn] = {}
    for stem in ("denoiser", "denoiser_tdtm", "denoiser_tome", "denoiser_tdtm_tome"):
        path = artifacts / f"{stem}{ext}"
        if path.exists():
            run = _session_runner(path, kind)
            denoisers[stem] = lambda *a, _run=run: _run(*a)[0]
    if "denoiser" not in denoisers:
        raise FileNotFoundError(f"no denoiser{ext} in {artifacts}")
    return VideoRuntime(kind, encode, denoisers, shape)


def _find_key(tree, key: str):
    if isinstance(tree, dict):
        if key in tree:
            return tree[key]
        for value in tree.values():
            found = _find_key(value, key)
            if found is not None:
                return found
    return None


def load_runtime(kind: RuntimeKind, artifacts: Path | None) -> VideoRuntime:
    if kind is RuntimeKind.EAGER:
        return eager_runtime()
    if artifacts is None:
        raise ValueError(f"--runtime {kind.value} needs --artifacts DIR (from `tomobile export video-dit-tiny`)")
    return artifact_runtime(artifacts, kind)


@dataclass
class Generation:
    frames: np.ndarray  # (T, H, W, 3) float32 in [0, 1]
    result: SampleResult
    seconds: float  # sampling wall time (text encoding excluded)
    variants: list[str]


def initial_noise(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def generate(
    rt: VideoRuntime,
    prompt: str,
    seed: int,
    cfg: SamplerConfig,
    spatial: bool = False,
    on_step: Callable[[int], None] | None = None,
    states: tuple[np.ndarray, np.ndarray] | None = None,
) -> Generation:
    """One clip for `prompt`. TDTM steps use the merged variant; `spatial` picks the ToMe variants."""
    y, mask = states if states is not None else rt.encode(prompt)
    g = np.array([cfg.guidance], dtype=np.float32)
    used: set[str] = set()

    def velocity(x: np.ndarray, t: float, merged: bool) -> np.ndarray:
        name = variant_name(merged, spatial)
        if name not in rt.denoisers:
            raise KeyError(f"variant {name} missing; available: {', '.join(sorted(rt.denoisers))}")
        used.add(name)
        return rt.denoisers[name](x, np.array([t], dtype=np.float32), y, mask, g)

    start = time.perf_counter()
    result = sample(velocity, initial_noise(rt.shape, seed), cfg, on_step)
    seconds = time.perf_counter() - start
    frames = np.clip((result.x[0].transpose(1, 2, 3, 0) + 1.0) / 2.0, 0.0, 1.0)  # (T, H, W, 3)
    return Generation(frames.astype(np.float32), result, seconds, sorted(used))


def save_clip(frames: np.ndarray, out: Path, scale: int = 4, fps: int = 8) -> None:
    """Write .gif (upscaled, looping) or .npy (float32 [T, H, W, 3]) atomically."""
    suffix = out.suffix.lower()
    if suffix not in (".gif", ".npy"):
        raise ValueError(f"--out must end in .gif or .npy, got {out.name!r}")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(suffix=suffix, dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        if suffix == ".npy":
            np.save(tmp, frames.astype(np.float32))
        else:
            from PIL import Image

            imgs = [
                Image.fromarray((f * 255 + 0.5).astype(np.uint8)).resize((f.shape[1] * scale, f.shape[0] * scale), Image.NEAREST)
                for f in frames
            ]
            imgs[0].save(tmp, format="GIF", save_all=True, append_images=imgs[1:], duration=1000 // fps, loop=0)
        tmp.replace(out)
    finally:
        if tmp.exists():
            tmp.unlink()
