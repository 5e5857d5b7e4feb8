"""Streamed video generation.

`streamed_runtime` is runtime/video.py's VideoRuntime with every denoiser variant served by one
BlockStreamer (runtime/streaming.py): `tomobile generate --stream --memory-budget 64MB`. The text
encoder is loaded for the prompt and released before sampling starts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .manifest import FORMATS, RUNTIME_FORMATS, ManifestError
from .manifest_reader import read_manifest
from .memory import malloc_trim
from .runners import load_runner
from .streaming import BlockStreamer, CallStats, StreamError, mb, open_split
from .video import RuntimeKind, VideoRuntime, check_tdtm, tdtm_modes, tokenizer_encode

DENOISER_INPUTS = ("x", "t", "states", "mask", "guidance")


def text_encoder_path(artifacts: Path, kind: RuntimeKind) -> Path:
    """Where a split export keeps its text encoder for `kind`'s format."""
    return artifacts / f"text_encoder{FORMATS[RUNTIME_FORMATS[kind.value]].suffix}"


def check_text_encoder(artifacts: Path, kind: RuntimeKind) -> None:
    """StreamError unless the split export has a text encoder: checked before a prompt run does any work
    (the parts alone, e.g. video-dit-micro's, still stream states given directly)."""
    path = text_encoder_path(artifacts, kind)
    if not path.exists():
        raise StreamError(f"{path} is missing: {read_manifest(artifacts).model or 'this model'} has no text "
                          "encoder; prompts need `tomobile export video-dit-tiny --split blocks`")


def streamed_runtime(kind: RuntimeKind, artifacts: Path, budget: int, prefetch: bool = True,
                     threads: int | None = None, tdtm: dict[str, str] | None = None,
                     variants: list[str] | None = None) -> tuple[VideoRuntime, BlockStreamer]:
    """A VideoRuntime whose denoisers stream the split parts in `artifacts` under `budget` bytes;
    `tdtm` modes asked for must be the ones the folder was exported with. With `variants`, only
    their parts are checked and served (None: every variant)."""
    if kind is RuntimeKind.EAGER:
        raise StreamError(f"streaming runs exported parts on onnxruntime, executorch or coreai, not {kind.value}")
    split = open_split(artifacts, kind.value, variants=variants)
    video = read_manifest(artifacts).video
    if video is None:
        raise ManifestError(f"{artifacts / 'manifest.json'} records no model_config: not a video model's export")
    modes = tdtm_modes(video)
    check_tdtm(artifacts, modes, tdtm or {})
    streamer = BlockStreamer(split, budget, prefetch, threads)
    fmt = RUNTIME_FORMATS[kind.value]
    text_path = text_encoder_path(artifacts, kind)

    def encode(caption: str) -> tuple[np.ndarray, np.ndarray]:
        if not text_path.exists():
            raise StreamError(f"{text_path} is missing; prompts need the text encoder of "
                              "`tomobile export video-dit-tiny --split blocks`")
        input_ids, mask = tokenizer_encode(artifacts, video.caption_len)(caption)
        with load_runner(fmt, text_path) as runner:  # loaded for the prompt only, released now
            states = runner.run([input_ids, mask])[0].astype(np.float32)
        del runner
        malloc_trim()
        return states, mask.astype(np.float32)

    def make(variant: str):
        return lambda *arrays: streamer(variant, dict(zip(DENOISER_INPUTS, arrays, strict=True)))

    denoisers = {variant: make(variant) for variant in split.sequences}
    return VideoRuntime(kind, encode, denoisers, video.latent_shape, modes), streamer


def format_steps(stats: list[CallStats], budget: int) -> str:
    """Per-step table: parts run and loaded, load time and how much of it compute hid, peaks, latency."""
    header = ("step", "variant", "parts", "loaded", "load s", "hidden s", "resident", "peak RssAnon MB",
              "peak RssFile MB", "peak RSS MB", "latency s")
    rows = [header]
    for i, s in enumerate(stats):
        rows.append((str(i), s.variant, str(s.parts_run), str(s.parts_loaded), f"{s.load_s:.3f}", f"{s.hidden_s:.3f}",
                     mb(s.resident_max), f"{s.peak.anon / 1e6:.1f}", f"{s.peak.file / 1e6:.1f}",
                     f"{s.peak.rss / 1e6:.1f}", f"{s.latency_s:.3f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    most = max((s.resident_max for s in stats), default=0)
    lines.append(f"budget {mb(budget)}: resident parts at most {mb(most)}; "
                 f"{sum(s.parts_loaded for s in stats)} loads, {sum(s.hidden_s for s in stats):.2f} s of "
                 f"{sum(s.load_s for s in stats):.2f} s loading hidden behind compute")
    return "\n".join(lines)
