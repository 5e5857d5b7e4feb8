"""The built-in `video-dit-tiny`: trained VideoDiT + MiniLM text encoder, as exportable parts.

Parts (one artifact each per format):
    text_encoder        (input_ids, attention_mask) (1, L) int64 -> states (1, L, 384)
    denoiser            guided velocity, no merge
    denoiser_tdtm       guided velocity with TDTM (frame pairs merged in attention)
    denoiser_tome       guided velocity with spatial ToMe (SD style) in spatial self-attention
    denoiser_tdtm_tome  both
Every denoiser takes x (1, 3, T, H, W), t (1,), states (1, L, 384), mask (1, L), guidance (1,)
and runs the conditional and null captions as one batch of 2 inside (static CFG). The TDTM
variants follow the model config's TDTM modes (positions, odd frames), recorded in the manifest.
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, replace
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from ..methods.merge import ARITHMETIC
from ..methods.ops import OPS_ATTR, MergeOps, merge_ops_of
from ..methods.spatial_merge import SpatialMergeConfig
from ..methods.tdtm import TdtmOdd, TdtmPositions
from ..spec.config import MergeConfig
from ..spec.grammar import SpecError
from .exportable import Exportable, ModelBundle, TensorSpec
from .text_context import TOKENIZER_FILES, TextEncoder, encode_captions, minilm_dir, tokenize
from .video_dit import VideoDiT, VideoDiTConfig, VideoMerge

WEIGHTS = Path(__file__).resolve().parent / "weights" / "video_dit_tiny.safetensors"
MODEL_NAME = "video-dit-tiny"
DEFAULT_SPATIAL_RATIO = 0.5
# Sampler defaults written to the manifest; runtime/video.py reads the same values.
SAMPLER_DEFAULTS = {"steps": 30, "guidance": 4.0, "shift": 2.0, "lpl_step": 15, "tdtm_steps": 15,
                    "timesteps": "discrete", "lpl_similarity": "original"}

VARIANTS: dict[str, VideoMerge] = {
    "denoiser": VideoMerge(),
    "denoiser_tdtm": VideoMerge(tdtm=True),
    "denoiser_tome": VideoMerge(spatial=SpatialMergeConfig(DEFAULT_SPATIAL_RATIO)),
    "denoiser_tdtm_tome": VideoMerge(tdtm=True, spatial=SpatialMergeConfig(DEFAULT_SPATIAL_RATIO)),
}


def checkpoint_config(path: Path = WEIGHTS) -> VideoDiTConfig:
    """The config in a checkpoint's metadata, TDTM modes included (the defaults where it has none)."""
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}; train it with scripts/train_video_dit.py")
    with safe_open(str(path), framework="pt") as f:
        return VideoDiTConfig(**json.loads(f.metadata()["config"]))


def load_video_dit(path: Path = WEIGHTS, tdtm_positions: TdtmPositions | None = None,
                   tdtm_odd: TdtmOdd | None = None) -> VideoDiT:
    """A fresh copy of the trained denoiser in eval mode (the caller may patch or move it freely);
    its config comes from the checkpoint's metadata, with the TDTM modes given here (not None) in
    place of the checkpoint's recorded ones. The checkpoint (4 MB) is read from disk each call."""
    cfg = checkpoint_config(path)
    modes = {"tdtm_positions": tdtm_positions, "tdtm_odd": tdtm_odd}
    cfg = replace(cfg, **{k: v for k, v in modes.items() if v is not None})
    model = VideoDiT(cfg)
    model.load_state_dict(load_file(str(path)))
    return model.eval().requires_grad_(False)


def guided_velocity(
    model: VideoDiT,
    x: torch.Tensor,
    t: torch.Tensor,
    states: torch.Tensor,
    mask: torch.Tensor,
    guidance: torch.Tensor,
    merge: VideoMerge,
    ops: MergeOps = ARITHMETIC,
) -> torch.Tensor:
    """CFG velocity v_u + g (v_c - v_u) from one batch of 2. x (1, 3, T, H, W), t (1,), g (1,)."""
    y_null = model.y_null[None].to(states.dtype)  # (1, L, Dy)
    y = torch.cat([states, y_null], dim=0)  # (2, L, Dy)
    m = torch.cat([mask.to(states.dtype), torch.ones_like(mask, dtype=states.dtype)], dim=0)  # (2, L)
    v = model(torch.cat([x, x], dim=0), torch.cat([t, t], dim=0), y, m, merge, ops)  # (2, 3, T, H, W)
    return v[1:] + guidance.reshape(1, 1, 1, 1, 1) * (v[:1] - v[1:])  # (1, 3, T, H, W)


class GuidedDenoiser(Exportable):
    """Exportable CFG denoiser with a fixed merge choice (static at trace time), spelled by the ops
    it holds (OPS_ATTR: ARITHMETIC; an exporter traces its own with `using_ops`)."""

    output_names = ("velocity",)

    def __init__(self, model: VideoDiT, merge: VideoMerge) -> None:
        super().__init__()
        self.model = model
        self.merge = merge
        setattr(self, OPS_ATTR, ARITHMETIC)
        c = model.cfg
        self.input_specs = (
            TensorSpec("x", (1, c.channels, c.frames, c.size, c.size)),
            TensorSpec("t", (1,)),
            TensorSpec("states", (1, c.caption_len, c.caption_dim)),
            TensorSpec("mask", (1, c.caption_len)),
            TensorSpec("guidance", (1,)),
        )

    def example_inputs(self, seed: int = 0) -> tuple[torch.Tensor, ...]:
        gen = torch.Generator().manual_seed(seed)
        x, _, states, _, _ = (spec.example(gen) for spec in self.input_specs)
        mask = (torch.arange(self.model.cfg.caption_len) < 7).float()[None]  # (1, L)
        return x, torch.rand(1, generator=gen), states, mask, torch.tensor([SAMPLER_DEFAULTS["guidance"]])

    def forward(self, x, t, states, mask, guidance) -> tuple[torch.Tensor]:
        return (guided_velocity(self.model, x, t, states, mask, guidance, self.merge, merge_ops_of(self)),)


def _real_denoiser_inputs(cfg: VideoDiTConfig) -> tuple[torch.Tensor, ...]:
    states, mask = encode_captions(["a red circle moving left"], cfg.caption_len)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, cfg.channels, cfg.frames, cfg.size, cfg.size, generator=gen)
    return x, torch.tensor([0.7]), states, mask.float(), torch.tensor([SAMPLER_DEFAULTS["guidance"]])


def _real_text_inputs(cfg: VideoDiTConfig) -> tuple[torch.Tensor, ...]:
    return tokenize(["a red circle moving left"], cfg.caption_len)


def pipeline_manifest(cfg: VideoDiTConfig) -> dict:
    """What an app needs to run the pipeline without Python."""
    return {
        "pipeline": "text-to-video rectified flow",
        "model_config": asdict(cfg),
        "sampler": {
            "kind": "rectified-flow euler",
            "convention": "x_t = (1 - t) x0 + t eps; v = eps - x0; x <- x - v * (t_i - t_{i+1}); start x ~ N(0, 1) at t = 1",
            **SAMPLER_DEFAULTS,
            "timestep_rule": "t_i = shift(u_i), i = 0..steps-1, then t_steps = 0; discrete (default, Open-Sora RFLOW): "
                             "u_i = round_half_even((1 - i / steps) * 1000) / 1000; continuous: u_i = 1 - i / steps; "
                             "shift(t) = a t / (1 + (a - 1) t), a = shift",
            "lpl": "at leap step i: x0 = x - v(x, t_i) * t_i; auto (On-device Sora): from min_steps = round(14 * steps / 30) on, similarity of consecutive v against the best so far (starting at 0), leap after patience 3 steps without a gain above tolerance 1e-3",
            "lpl_similarity_rule": "original (default): mean over rows h of cos(v[0,0,0,h,:], v_prev[0,0,0,h,:]); full: one cosine over all of v; "
                                   "cos(a, b) = a.b / (max(|a|, 1e-8) max(|b|, 1e-8)), float64, sums in index order",
            "tdtm": "use denoiser_tdtm (or denoiser_tdtm_tome) for steps i < tdtm_steps",
        },
        "tdtm": {
            "positions": cfg.tdtm_positions.value,
            "odd_frames": cfg.tdtm_odd.value,
            "rule": "merged frame i = mean of frames 2i, 2i+1; after attention copied back to both. odd frames: original "
                    "(On-device Sora) drops the last frame and fills it with the last merged frame, keep makes it its "
                    "own merged frame. temporal RoPE positions: original (On-device Sora) 0..T'-1, midpoint 2i + 0.5 "
                    "(a kept odd frame T - 1). Fixed in the denoiser_tdtm* graphs at export.",
        },
        "text": {"caption_len": cfg.caption_len, "tokenizer": "BERT WordPiece (MiniLM), lowercase, pad to caption_len"},
        "io": {
            "video": "velocity/x layout (1, 3, T, H, W); output frames = clip((x + 1) / 2, 0, 1)",
            "denoiser_inputs": ["x", "t", "states", "mask", "guidance"],
        },
        "variants": {name: {"tdtm": m.tdtm, "spatial_ratio": m.spatial.ratio} for name, m in VARIANTS.items()},
    }


def build_video_dit_tiny(merge: MergeConfig, tdtm_positions: TdtmPositions | None = None,
                         tdtm_odd: TdtmOdd | None = None) -> ModelBundle:
    """Its merges are fixed per variant (see VARIANTS): a generic ToMe config is refused, not ignored.
    TDTM modes left None are the checkpoint's recorded ones."""
    if merge.enabled:
        raise SpecError(f"{MODEL_NAME} has its merges built in (TDTM and spatial-ToMe denoiser variants); "
                        f"--merge {merge.describe()} does not apply to it")
    model = load_video_dit(WEIGHTS, tdtm_positions, tdtm_odd)
    cfg = model.cfg
    parts: dict[str, Exportable] = {"text_encoder": TextEncoder(cfg.caption_len).eval()}
    for name, vm in VARIANTS.items():
        parts[name] = GuidedDenoiser(model, vm).eval()
    extra = {name: minilm_dir() / name for name in TOKENIZER_FILES if (minilm_dir() / name).exists()}
    real = {name: functools.partial(_real_denoiser_inputs, cfg) for name in VARIANTS}
    real["text_encoder"] = functools.partial(_real_text_inputs, cfg)
    return ModelBundle(MODEL_NAME, parts, extra, pipeline_manifest(cfg), real)
