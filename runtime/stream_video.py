"""Streamed video generation and the split export's chain check.

`streamed_runtime` is runtime/video.py's VideoRuntime with every denoiser variant served by one
BlockStreamer (runtime/streaming.py): `tomobile generate --stream --memory-budget 64MB`. The text
encoder is loaded for the prompt and released before sampling starts.
`check_chains` runs each variant's parts in order on the monolithic denoiser's test vectors and
compares the result with its eager output: what `tomobile validate` adds for a split export.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .artifacts import load_runner
from .memory import malloc_trim
from .streaming import RUNTIME_FORMATS, BlockStreamer, CallStats, StreamError, mb, open_split, parse_bytes
from .manifest import load_manifest
from .validate import FAIL, OutputCheck, compare
from .video import LEGACY_TDTM, RuntimeKind, VideoRuntime, _tokenizer_encode, check_tdtm

DENOISER_INPUTS = ("x", "t", "states", "mask", "guidance")
UNLIMITED = 1 << 62
DEFAULT_ARTIFACTS = Path("tomobile-out") / "video-dit-tiny"  # where `tomobile export video-dit-tiny` writes


def streamed_runtime(kind: RuntimeKind, artifacts: Path, budget: int, prefetch: bool = True,
                     threads: int | None = None, tdtm: dict[str, str] | None = None
                     ) -> tuple[VideoRuntime, BlockStreamer]:
    """A VideoRuntime whose denoisers stream the split parts in `artifacts` under `budget` bytes;
    `tdtm` modes asked for must be the ones the folder was exported with."""
    if kind is RuntimeKind.EAGER:
        raise StreamError(f"--stream runs exported parts: use --runtime onnxruntime, executorch or coreai, not {kind.value}")
    split = open_split(artifacts, kind.value)
    cfg = load_manifest(artifacts)["model_config"]
    modes = {key: str(cfg.get(key, legacy)) for key, legacy in LEGACY_TDTM.items()}
    check_tdtm(artifacts, modes, tdtm or {})
    streamer = BlockStreamer(split, budget, prefetch, threads)
    shape = (1, int(cfg["channels"]), int(cfg["frames"]), int(cfg["size"]), int(cfg["size"]))
    fmt = RUNTIME_FORMATS[kind.value]
    text_path = artifacts / {"onnx": "text_encoder.onnx", "executorch": "text_encoder.pte",
                             "coreai": "text_encoder.aimodel"}[fmt]

    def encode(caption: str) -> tuple[np.ndarray, np.ndarray]:
        if not text_path.exists():
            raise StreamError(f"{text_path} is missing; prompts need the text encoder of "
                              "`tomobile export video-dit-tiny --split blocks`")
        input_ids, mask = _tokenizer_encode(artifacts, int(cfg["caption_len"]))(caption)
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
    header = ("step", "variant", "parts", "loaded", "load s", "hidden s", "resident MB", "peak RssAnon MB",
              "peak RssFile MB", "peak RSS MB", "latency s")
    rows = [header]
    for i, s in enumerate(stats):
        rows.append((str(i), s.variant, str(s.parts_run), str(s.parts_loaded), f"{s.load_s:.3f}", f"{s.hidden_s:.3f}",
                     f"{s.resident_max / 1e6:.1f}", f"{s.peak.anon / 1e6:.1f}", f"{s.peak.file / 1e6:.1f}",
                     f"{s.peak.rss / 1e6:.1f}", f"{s.latency_s:.3f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    most = max((s.resident_max for s in stats), default=0)
    lines.append(f"budget {mb(budget)}: resident parts at most {mb(most)}; "
                 f"{sum(s.parts_loaded for s in stats)} loads, {sum(s.hidden_s for s in stats):.2f} s of "
                 f"{sum(s.load_s for s in stats):.2f} s loading hidden behind compute")
    return "\n".join(lines)


def check_chains(folder: Path, manifest: dict) -> list[OutputCheck]:
    """Each variant's parts chained in order (all resident) on the monolithic denoiser's test
    vectors, against its eager outputs; one row per runtime, variant and case."""
    from .validate import _cases

    formats = {f for p in manifest["split"]["parts"] for f in p["files"]}
    checks = []
    for runtime, fmt in RUNTIME_FORMATS.items():
        if fmt not in formats:
            continue
        try:
            split = open_split(folder, runtime, verify=False)  # validate_dir checked the sha256s
            streamer = BlockStreamer(split, UNLIMITED, prefetch=False)
        except Exception as err:
            return [*checks, OutputCheck(f"chain ({fmt})", "load", "-", (), None, None, FAIL, str(err))]
        precision = "fp16" if any(p.float16 for p in split.parts.values()) else "fp32"
        for variant in split.sequences:
            names = [i["name"] for i in manifest["parts"][variant]["inputs"]]
            for case, (inputs, expected) in _cases(folder, variant).items():
                out = streamer(variant, dict(zip(names, inputs, strict=True)))
                err, quality, status, note = compare(expected["velocity"], out, precision)
                checks.append(OutputCheck(f"chain {variant} ({fmt})", case, "velocity", out.shape, err, quality,
                                          status, note))
        streamer.close()
    return checks


def stream_args(stream: bool, runtime: str, artifacts: str | None, budget: str | None, prefetch: bool,
                tdtm: dict[str, str] | None = None) -> tuple[VideoRuntime, BlockStreamer]:
    """`generate --stream` options -> streamed runtime; StreamError (one line) on a bad combination."""
    if not stream:
        raise StreamError("--memory-budget and --no-prefetch apply only with --stream")
    if budget is None:
        raise StreamError("--stream needs --memory-budget SIZE (e.g. 64MB): the bytes its loaded parts may take")
    folder = Path(artifacts) if artifacts else DEFAULT_ARTIFACTS
    if not folder.is_dir():
        raise StreamError(f"no export at {folder}; run `tomobile export video-dit-tiny --split blocks --out {folder}` "
                          "or give --artifacts DIR")
    return streamed_runtime(RuntimeKind(runtime), folder, parse_bytes(budget), prefetch, tdtm=tdtm)
