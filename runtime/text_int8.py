"""The int8 text encoder that a video-dit-tiny ONNX export writes for the browser (text_encoder.int8.onnx,
"companion_of" text_encoder.onnx), checked against the fp32 pipeline where it matters:

- the caption states it gives: cosine per real token (mask 1) against the fp32 text encoder's, the
  lowest over every token of every caption below, at least TEXT_MIN_COSINE;
- the clip: the same prompt, seed and default sampler (30 steps) on the same fp32 denoiser, once with
  each text encoder; PSNR of the int8 pipeline's frames against the fp32 pipeline's (peak 1), at
  least CLIP_MIN_PSNR_DB.

Its per-artifact row (test vectors, PSNR >= INT8_MIN_PSNR_DB against eager) is the ordinary one;
`check_text_companion` is one of validate.py's FOLDER_CHECKS.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .manifest_reader import Manifest
from .report import FAIL, PASS, OutputCheck
from .sampler import SamplerConfig
from .video import RuntimeKind, artifact_runtime, generate
from .video_eval import psnr

TEXT_MIN_COSINE = 0.995  # every real token's state, int8 against fp32
CLIP_MIN_PSNR_DB = 40.0  # frames of the int8-text pipeline against the fp32 pipeline, peak 1
CAPTIONS = ("a red circle moving left", "a blue square moving up", "a green triangle moving right",
            "a yellow circle moving down", "a white square moving left")
CLIP_CAPTIONS = CAPTIONS[:2]


def token_cosines(reference: np.ndarray, actual: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Cosine per real token of states (1, L, D); mask (1, L), 1 for real tokens."""
    ref, act = reference[0].astype(np.float64), actual[0].astype(np.float64)  # (L, D)
    cos = (ref * act).sum(-1) / (np.linalg.norm(ref, axis=-1) * np.linalg.norm(act, axis=-1) + 1e-12)  # (L,)
    return cos[mask[0] > 0]


def check_text_companion(folder: Path, manifest: Manifest) -> list[OutputCheck]:
    """Rows for each int8 text encoder companion: caption states cosine, then one clip per caption
    (none for an export without one)."""
    checks = []
    for companion in (a for a in manifest.artifacts if a.companion_of and a.part == "text_encoder"):
        name = companion.path
        try:
            fp32 = artifact_runtime(folder, RuntimeKind.ONNXRUNTIME)
            int8 = artifact_runtime(folder, RuntimeKind.ONNXRUNTIME, text_artifact=companion)
        except Exception as err:  # cannot load: a failure to report, as validate_dir does
            checks.append(OutputCheck(name, "pipeline", "-", (), None, None, FAIL, f"{type(err).__name__}: {err}"))
            continue
        checks.append(_states_check(name, fp32.encode, int8.encode))
        if manifest.sampler is None:
            checks.append(OutputCheck(name, "pipeline", "-", (), None, None, FAIL, "the manifest records no sampler"))
            continue
        cfg = SamplerConfig(steps=manifest.sampler.steps, guidance=manifest.sampler.guidance,
                            shift=manifest.sampler.shift)
        for caption in CLIP_CAPTIONS:
            ref = generate(fp32, caption, 0, cfg).frames
            out = generate(int8, caption, 0, cfg).frames
            db = psnr(ref, out)
            checks.append(OutputCheck(name, f"clip '{caption}'", "frames", out.shape, float(np.abs(ref - out).max()), db,
                                      PASS if db >= CLIP_MIN_PSNR_DB else FAIL,
                                      f"PSNR >= {CLIP_MIN_PSNR_DB} dB against the fp32 pipeline ({cfg.steps} steps)"))
    return checks


def _states_check(name: str, encode_fp32, encode_int8) -> OutputCheck:
    lowest, worst_abs, shape = 1.0, 0.0, ()
    for caption in CAPTIONS:
        ref, mask = encode_fp32(caption)
        out, _ = encode_int8(caption)
        lowest = min(lowest, float(token_cosines(ref, out, mask).min()))
        worst_abs, shape = max(worst_abs, float(np.abs(ref - out).max())), out.shape
    status = PASS if lowest >= TEXT_MIN_COSINE else FAIL
    return OutputCheck(name, f"{len(CAPTIONS)} captions", "states", shape, worst_abs, None, status,
                       f"token cosine {lowest:.5f} >= {TEXT_MIN_COSINE} against fp32")
