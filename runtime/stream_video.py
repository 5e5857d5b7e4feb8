"""Streamed video generation.

`streamed_runtime` is runtime/video.py's VideoRuntime with every denoiser variant served by one
BlockStreamer (runtime/streaming.py): `tomobile generate --stream --memory-budget 64MB`. The text
encoder is loaded for the prompt and released before sampling starts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .artifacts import load_runner
from .manifest import load_manifest
from .memory import malloc_trim
from .streaming import RUNTIME_FORMATS, BlockStreamer, CallStats, StreamError, mb, open_split
from .video import LEGACY_TDTM, RuntimeKind, VideoRuntime, check_tdtm, tokenizer_encode

DENOISER_INPUTS = ("x", "t", "states", "mask", "guidance")


def text_encoder_path(artifacts: Path, kind: RuntimeKind) -> Path:
    """Where a split export keeps its text encoder for `kind`'s format."""
    fmt = RUNTIME_FORMATS[kind.value]
    return artifacts / {"onnx": "text_encoder.onnx", "executorch": "text_encoder.pte", "coreai": "text_encoder.aimodel"}[fmt]


def check_text_encoder(artifacts: Path, kind: RuntimeKind) -> None:
    """StreamError unless the split export has a text encoder: checked before a prompt run does any work
    (the parts alone, e.g. video-dit-micro's, still stream states given directly)."""
    path = text_encoder_path(artifacts, kind)
    if not path.exists():
        raise StreamError(f"{path} is missing: {load_manifest(artifacts).get('model', 'this model')} has no text "
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
    cfg = load_manifest(artifacts)["model_config"]
    modes = {key: str(cfg.get(key, legacy)) for key, legacy in LEGACY_TDTM.items()}
    check_tdtm(artifacts, modes, tdtm or {})
    streamer = BlockStreamer(split, budget, prefetch, threads)
    shape = (1, int(cfg["channels"]), int(cfg["frames"]), int(cfg["size"]), int(cfg["size"]))
    fmt = RUNTIME_FORMATS[kind.value]
    text_path = text_encoder_path(artifacts, kind)

    def encode(caption: str) -> tuple[np.ndarray, np.ndarray]:
        if not text_path.exists():
            raise StreamError(f"{text_path} is missing; prompts need the text encoder of "
                              "`tomobile export video-dit-tiny --split blocks`")
        input_ids, mask = tokenizer_encode(artifacts, int(cfg["caption_len"]))(caption)
        runner = load_runner(fmt, text_path)  # loaded for the prompt only
        states = runner.run([input_ids, mask])[0].astype(np.float32)
        if hasattr(runner, "close"):  # Core AI: release the model now
            runner.close()
        del runner
        malloc_trim()
        return states, mask.astype(np.float32)

    def make(variant: str):
        return lambda *arrays: streamer(variant, dict(zip(DENOISER_INPUTS, arrays, strict=True)))

    denoisers = {variant: make(variant) for variant in split.sequences}
    return VideoRuntime(kind, encode, denoisers, shape, modes), streamer


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
