"""Text-to-video generation for `video-dit-tiny` on eager PyTorch, ONNX Runtime, ExecuTorch or Core AI.

One `VideoRuntime` = a text encoder callable and one denoiser callable per variant, all numpy in,
numpy out; `generate` drives them through runtime/sampler.py, so every runtime runs the same loop.
Artifacts come from `tomobile export video-dit-tiny` (text_encoder.*, denoiser*.*, tokenizer files,
manifest.json).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import numpy as np
import torch

from ..graphs.errors import InputError
from ..graphs.models.text_context import encode_captions
from ..graphs.models.video_zoo import MODEL_NAME, VARIANTS, WEIGHTS, guided_velocity, load_video_dit
from .manifest import RUNTIME_FORMATS, ManifestError, sha256_path
from .manifest_reader import Artifact, Manifest, VideoConfig, read_manifest
from .noise import latent_noise
from .report import ValidationError
from .runners import load_runner
from .runners.onnxruntime import OnnxRunner
from .runners.ort_shared import OrtCapiError, SharedWeightSessions
from .sampler import LeapMode, SamplerConfig, SampleResult, sample

log = logging.getLogger(__name__)

DenoiseFn = Callable[..., np.ndarray]  # (x, t, states, mask, guidance) -> velocity


class RuntimeKind(str, Enum):
    EAGER = "eager"
    ONNXRUNTIME = "onnxruntime"
    EXECUTORCH = "executorch"
    COREAI = "coreai"  # coreai-core's Linux CPU runtime on the .aimodel parts


@dataclass
class VideoRuntime:
    kind: RuntimeKind
    encode: Callable[[str], tuple[np.ndarray, np.ndarray]]  # caption -> states (1, L, Dy), mask (1, L)
    denoisers: Mapping[str, DenoiseFn]  # variant stem -> callable
    shape: tuple[int, ...]  # (1, 3, T, H, W)
    # The TDTM modes its merged variants run: tdtm_positions, tdtm_odd (empty when not known).
    tdtm: dict[str, str] = field(default_factory=dict)


def variant_name(merged: bool, spatial: bool) -> str:
    return "denoiser" + ("_tdtm" if merged else "") + ("_tome" if spatial else "")


def eager_runtime(tdtm: dict[str, str] | None = None) -> VideoRuntime:
    """The shipped checkpoint in PyTorch; `tdtm` modes (tdtm_positions, tdtm_odd) replace its recorded ones."""
    model = load_video_dit(WEIGHTS, **(tdtm or {}))
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
    modes = {"tdtm_positions": cfg.tdtm_positions.value, "tdtm_odd": cfg.tdtm_odd.value}
    return VideoRuntime(RuntimeKind.EAGER, encode, denoisers, (1, cfg.channels, cfg.frames, cfg.size, cfg.size), modes)


class PromptError(InputError):
    """A prompt that is not text (invalid UTF-8 bytes on the command line): one line, exit code 2."""


def check_prompt(prompt: str) -> str:
    """The prompt, if it is valid UTF-8 text. Python decodes invalid bytes in argv to lone
    surrogates, which tokenizers refuse with a TypeError; refuse them here, naming the byte."""
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError as err:
        bad = prompt[err.start]
        byte = f"byte 0x{ord(bad) - 0xDC00:02x}" if 0xDC80 <= ord(bad) <= 0xDCFF else f"character U+{ord(bad):04X}"
        raise PromptError(f"PROMPT is not valid UTF-8 text ({byte} at position {err.start}); give the prompt as "
                          "UTF-8 text") from None
    return prompt


def tokenizer_encode(artifacts: Path, length: int) -> Callable[[str], tuple[np.ndarray, np.ndarray]]:
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(artifacts))
    except Exception as err:  # transformers raises many types for a damaged tokenizer file
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ManifestError(f"the tokenizer files in {artifacts} (tokenizer.json, tokenizer_config.json) cannot be "
                            f"loaded: {first}; export the folder again") from None

    def ids(caption: str) -> tuple[np.ndarray, np.ndarray]:
        enc = tok([caption], padding="max_length", truncation=True, max_length=length, return_tensors="np")
        return enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)

    return ids


def _shared_onnx(shared: dict[Path, SharedWeightSessions], path: Path, data: Path,
                 threads: int | None) -> Callable[..., list[np.ndarray]] | None:
    """A session of `path` that takes its weights from the group's shared owner of `data` (one
    prepacked copy for all the group's variants: runtime/runners/ort_shared.py), or None where the C
    library cannot be used here (then the caller opens an ordinary session)."""
    if os.environ.get("TOMOBILE_ORT_SHARED_WEIGHTS", "1") == "0":
        return None
    try:
        if data not in shared:
            shared[data] = SharedWeightSessions(data, threads=threads, spinning=False)
        session = shared[data].session(path)
    except (OrtCapiError, OSError) as err:
        log.info("ONNX Runtime sessions do not share prepacked weights (%s); each packs its own", err)
        return None
    shared[data].drop_resident()  # the sessions packed what they need; mapped pages come back on use
    return lambda *arrays: session.run(list(arrays))


def _session_runner(folder: Path, artifact: Artifact, kind: RuntimeKind,
                    shared: dict[Path, SharedWeightSessions] | None = None) -> Callable[..., list[np.ndarray]]:
    """The artifact's runner as a callable. An ONNX graph on a weight group's shared
    `<group>.onnx.data` takes its weights from the group's owner in `shared` (one prepacked copy
    for the group's variants, one owner per data file); the variants of one ExecuTorch program or
    Core AI asset share the loaded program or asset (runners/)."""
    path = folder / artifact.path
    weights = folder / artifact.weights.path if artifact.weights is not None else None
    if kind is RuntimeKind.ONNXRUNTIME:
        # A clip switches between five sessions (text encoder, denoiser variants), each with its own
        # thread pool. With spinning on, the pool of the session just left keeps a core busy while
        # the next one runs: the first TDTM call after an unmerged one took 1.37x its steady time,
        # and 30-step clips ran 1.5x slower on the shared 2-core machine (docs/video.md).
        threads = int(os.environ.get("TOMOBILE_THREADS", "0")) or None
        if weights is not None and shared is not None:
            run = _shared_onnx(shared, path, weights, threads)
            if run is not None:
                return run
        runner = OnnxRunner(path, threads=threads, spinning=False)
    else:
        runner = load_runner(artifact.format, path, weights, artifact.entry_name)
    return lambda *arrays: runner.run(list(arrays))


class LazyVariants(Mapping):
    """Variant stem -> denoiser callable, each loaded on first use: a variant the run does not
    use is never opened, so a damaged one cannot stop it."""

    def __init__(self, loaders: dict[str, Callable[[], DenoiseFn]]) -> None:
        self._loaders = loaders
        self._loaded: dict[str, DenoiseFn] = {}

    def __getitem__(self, name: str) -> DenoiseFn:
        if name not in self._loaded:
            self._loaded[name] = self._loaders[name]()
        return self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._loaders)

    def __len__(self) -> int:
        return len(self._loaders)


def checked_runner(folder: Path, artifact: Artifact, kind: RuntimeKind,
                    shared: dict[Path, SharedWeightSessions] | None = None) -> Callable[..., list[np.ndarray]]:
    """The artifact's session, after its sha256 matched the manifest; one-line errors otherwise.
    `shared`: the owners of shared ONNX weights files, one per file, kept by the caller."""
    for record in (artifact.file, artifact.weights):  # a weights file beside the graph: a weight group's
        if record is None:
            continue
        file = folder / record.path
        if not file.exists():
            raise FileNotFoundError(f"{file} is listed in the manifest but missing; export again")
        if sha256_path(file) != record.sha256:
            raise ValidationError(f"{file} does not match its sha256 in the manifest (corrupt or changed); export again")
    try:
        return _session_runner(folder, artifact, kind, shared)
    except Exception as err:  # a runtime that cannot load a file whose checksum matched
        path = folder / artifact.path
        raise ValidationError(f"{kind.value} cannot load {path}: {str(err).splitlines()[0] if str(err) else err}") from None


def _video_manifest(artifacts: Path, kind: RuntimeKind) -> tuple[Manifest, VideoConfig, dict[str, Artifact]]:
    """The export's manifest, its video config and its artifacts for `kind` by part, or a one-line
    error saying what is missing."""
    if not artifacts.is_dir():
        raise FileNotFoundError(f"--artifacts {artifacts} is not a folder; run `tomobile export {MODEL_NAME} "
                                f"--out {artifacts}` first")
    manifest = read_manifest(artifacts)
    if manifest.model != MODEL_NAME or manifest.video is None:
        raise ManifestError(f"{artifacts} holds an export of {manifest.model!r}, not {MODEL_NAME}; "
                            f"give a folder from `tomobile export {MODEL_NAME}`")
    fmt = RUNTIME_FORMATS[kind.value]
    # An int8 companion (the browser's text encoder, "companion_of" its fp32 file) is not the reference.
    parts = {a.part: a for a in manifest.artifacts if a.format == fmt and a.companion_of is None}
    if "text_encoder" not in parts or "denoiser" not in parts:
        raise FileNotFoundError(f"{artifacts} has no {fmt} text_encoder and denoiser; export them with --format {fmt}")
    return manifest, manifest.video, parts


# What exports made before the TDTM modes existed ran (their manifests record no modes).
LEGACY_TDTM = {"tdtm_positions": "midpoint", "tdtm_odd": "keep"}


def tdtm_modes(video: VideoConfig) -> dict[str, str]:
    """The TDTM modes an export's merged variants were built with (LEGACY_TDTM where it records none)."""
    recorded = {"tdtm_positions": video.tdtm_positions, "tdtm_odd": video.tdtm_odd}
    return {key: recorded[key] or legacy for key, legacy in LEGACY_TDTM.items()}


def artifact_tdtm(artifacts: Path, kind: RuntimeKind) -> dict[str, str]:
    """The TDTM modes an export folder's merged variants were built with (from its manifest)."""
    return tdtm_modes(_video_manifest(artifacts, kind)[1])


def check_tdtm(artifacts: Path, recorded: dict[str, str], asked: dict[str, str]) -> None:
    """A TDTM mode asked for that differs from the one the artifacts were exported with is an InputError."""
    for key, value in asked.items():
        if value != recorded[key]:
            flag = "--" + key.replace("_", "-")
            raise InputError(f"{flag} {value} differs from the {recorded[key]!r} that {artifacts} was exported with; "
                             f"re-export with `tomobile export video-dit-tiny {flag} {value}` or drop {flag}")


def artifact_runtime(artifacts: Path, kind: RuntimeKind, tdtm: dict[str, str] | None = None,
                     text_artifact: Artifact | None = None) -> VideoRuntime:
    """The text encoder (loaded now) and the denoiser variants (loaded when first used) of an export
    folder; `tdtm` modes asked for must be the ones it was exported with. `text_artifact`: another
    text encoder entry of the manifest to use (the int8 companion), instead of the fp32 one."""
    _, video, parts = _video_manifest(artifacts, kind)
    modes = tdtm_modes(video)
    check_tdtm(artifacts, modes, tdtm or {})
    ids = tokenizer_encode(artifacts, video.caption_len)
    text = checked_runner(artifacts, text_artifact or parts["text_encoder"], kind)

    def encode(caption: str) -> tuple[np.ndarray, np.ndarray]:
        input_ids, mask = ids(caption)
        return text(input_ids, mask)[0].astype(np.float32), mask.astype(np.float32)

    shared: dict[Path, SharedWeightSessions] = {}  # a weight group's variants: one prepacked copy

    def loader(artifact: Artifact) -> Callable[[], DenoiseFn]:
        def load() -> DenoiseFn:
            run = checked_runner(artifacts, artifact, kind, shared)
            return lambda *a: run(*a)[0]

        return load

    variants = LazyVariants({stem: loader(a) for stem, a in parts.items() if stem.startswith("denoiser")})
    return VideoRuntime(kind, encode, variants, video.latent_shape, modes)


def needed_variants(cfg: SamplerConfig, spatial: bool) -> list[str]:
    """The denoiser variants a run with `cfg` calls: TDTM-merged for steps below tdtm_steps, plain
    for the steps after them, up to the fixed leap step (an auto leap may stop anywhere)."""
    last = cfg.leap.step if cfg.leap.mode is LeapMode.FIXED else cfg.steps - 1
    names = [variant_name(True, spatial)] if cfg.tdtm_steps > 0 else []
    return names + ([variant_name(False, spatial)] if cfg.tdtm_steps <= last else [])


def variant(rt: VideoRuntime, name: str) -> DenoiseFn:
    """The denoiser variant `name` (loaded if it was not yet), or a one-line error if the export lacks it."""
    if name not in rt.denoisers:
        raise FileNotFoundError(f"denoiser variant {name} is not in the export; available: "
                                f"{', '.join(sorted(rt.denoisers))}")
    return rt.denoisers[name]


def preload(rt: VideoRuntime, names: list[str]) -> None:
    """Load `names` now, so that a missing or damaged variant stops the run before it starts."""
    for name in dict.fromkeys(names):
        variant(rt, name)


def load_runtime(kind: RuntimeKind, artifacts: Path | None, tdtm: dict[str, str] | None = None) -> VideoRuntime:
    """`tdtm`: TDTM modes asked for (tdtm_positions, tdtm_odd); eager runs them, artifacts must have them."""
    if kind is RuntimeKind.EAGER:
        return eager_runtime(tdtm)
    if artifacts is None:
        raise InputError(f"--runtime {kind.value} needs --artifacts DIR (from `tomobile export video-dit-tiny`)")
    return artifact_runtime(artifacts, kind, tdtm)


@dataclass
class Generation:
    frames: np.ndarray  # (T, H, W, 3) float32 in [0, 1]
    result: SampleResult
    seconds: float  # sampling wall time (text encoding excluded)
    variants: list[str]


def initial_noise(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """The same noise for `seed` on every platform (runtime/noise.py, docs/contract.md)."""
    return latent_noise(shape, seed)


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
    check_prompt(prompt)
    y, mask = states if states is not None else rt.encode(prompt)
    g = np.array([cfg.guidance], dtype=np.float32)
    used: set[str] = set()

    def velocity(x: np.ndarray, t: float, merged: bool) -> np.ndarray:
        name = variant_name(merged, spatial)
        used.add(name)
        return variant(rt, name)(x, np.array([t], dtype=np.float32), y, mask, g)

    noise = initial_noise(rt.shape, seed)
    start = time.perf_counter()
    result = sample(velocity, noise, cfg, on_step)
    seconds = time.perf_counter() - start
    check_finite(result.x, cfg)
    return Generation(frames_from_latent(result.x), result, seconds, sorted(used))


class NonFiniteClip(InputError):
    """Sampling ended in NaN or inf (e.g. a guidance scale whose products overflow float32): an
    error, never a written clip (one line for the CLI, exit code 2)."""


def check_finite(x: np.ndarray, cfg: SamplerConfig) -> None:
    """Refuse a latent with NaN or inf: np.clip would pass NaN into the frames."""
    if not np.all(np.isfinite(x)):
        raise NonFiniteClip(f"the sampled clip has NaN or inf values (guidance {cfg.guidance:g}, {cfg.steps} steps: "
                            "float32 overflowed); give a smaller --guidance, e.g. 1 to 20; nothing was written")


def _write_gif(pixels: np.ndarray, path: Path, fps: int) -> None:
    from PIL import Image

    imgs = [Image.fromarray(f) for f in pixels]
    imgs[0].save(path, format="GIF", save_all=True, append_images=imgs[1:], duration=1000 // fps, loop=0)


def _write_video(pixels: np.ndarray, path: Path, fps: int) -> None:
    """H.264 in yuv420p (what phones and browsers play) through imageio-ffmpeg's ffmpeg; sides are even
    (the clips are upscaled by an even factor), so nothing is resized."""
    import imageio_ffmpeg

    _, h, w, _ = pixels.shape
    writer = imageio_ffmpeg.write_frames(str(path), (w, h), fps=fps, codec="libx264", pix_fmt_out="yuv420p",
                                         macro_block_size=2, quality=9, ffmpeg_log_level="error")
    writer.send(None)  # start ffmpeg
    for frame in pixels:
        writer.send(np.ascontiguousarray(frame))
    writer.close()


def frames_from_latent(x: np.ndarray) -> np.ndarray:
    """Latent (1, 3, T, H, W) -> frames (T, H, W, 3) float32: clip(f32(f32(x + 1) / 2), 0, 1)."""
    frames = np.clip((x[0].transpose(1, 2, 3, 0) + np.float32(1.0)) / np.float32(2.0), 0.0, 1.0)
    return frames.astype(np.float32)


CLIP_SUFFIXES = (".gif", ".npy", ".mp4")


def check_clip_file(out: Path) -> None:
    """Before any work: `out`'s format can be written here (.mp4 needs imageio-ffmpeg's ffmpeg)."""
    if out.suffix.lower() == ".mp4" and importlib.util.find_spec("imageio_ffmpeg") is None:
        raise InputError("--out .mp4 needs the imageio-ffmpeg package (pip install 'tomobile[video]'); "
                         ".gif and .npy need nothing more")


def save_clip(frames: np.ndarray, out: Path, scale: int = 4, fps: int = 8) -> None:
    """Write .gif (upscaled, looping), .mp4 (upscaled, H.264) or .npy (float32 [T, H, W, 3]) atomically."""
    suffix = out.suffix.lower()
    if suffix not in CLIP_SUFFIXES:
        raise InputError(f"--out must end in {', '.join(CLIP_SUFFIXES)}, got {out.name!r}")
    check_clip_file(out)
    if not np.all(np.isfinite(frames)):
        raise NonFiniteClip(f"the clip for {out} has NaN or inf values; nothing was written")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.stem}.{os.getpid()}.tmp{suffix}"  # opened as usual: umask-respecting mode
    try:
        if suffix == ".npy":
            np.save(tmp, frames.astype(np.float32))
        else:
            pixels = (frames * 255 + 0.5).astype(np.uint8).repeat(scale, axis=1).repeat(scale, axis=2)  # nearest
            if suffix == ".mp4":
                _write_video(pixels, tmp, fps)
            else:
                _write_gif(pixels, tmp, fps)
        tmp.replace(out)
    finally:
        if tmp.exists():
            tmp.unlink()
