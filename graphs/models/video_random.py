"""Video DiTs with video-dit-tiny's architecture and random seeded weights, for streaming work.

`video-dit-large`: blocks 1152 wide with 16 heads (STDiT3-XL/2's width, 85 MB of fp32 weights per
STBlock), 4 spatial + 4 temporal blocks, about 737 MB of fp32 weights in all, and few tokens (4
frames of 4 x 4 patches) so one denoising step takes seconds on a laptop CPU. One denoiser variant
(no merge): merged variants would each add the weights again on disk.
`video-dit-micro`: one block pair 32 wide, the spatial-ToMe variants without and with TDTM (so a
sampler switches variants), for fast tests of split export and streaming.

Every weight is drawn from a fixed seed (nothing is trained or downloaded), the final layer too,
so every part computes something to check; caption states are seeded random inputs, so these
bundles have no text encoder.
"""

from __future__ import annotations

import torch

from ..methods.spatial_merge import SpatialMergeConfig
from ..spec.config import MergeConfig
from ..spec.grammar import SpecError
from .exportable import Exportable, ModelBundle
from .video_dit import VideoDiT, VideoDiTConfig, VideoMerge
from .video_zoo import DEFAULT_SPATIAL_RATIO, GuidedDenoiser

_FLAGS = {"pooled_caption": True, "frame_pos": True}  # as video-dit-tiny
# video-dit-large predicts the velocity directly: with random weights, x-prediction's (x - x0) / t
# at a small seeded t (0.04) makes velocities of 100+ whose fp32 rounding alone passes 1e-4.
LARGE = VideoDiTConfig(frames=4, size=32, patch=4, hidden=1152, depth=4, heads=16, caption_len=16, caption_dim=384,
                       x0_prediction=False, **_FLAGS)
MICRO = VideoDiTConfig(frames=4, size=8, patch=4, hidden=32, depth=1, heads=2, caption_len=4, caption_dim=16,
                       x0_prediction=True, **_FLAGS)
SEED = 1152
# On-device Sora's STDiT3-XL/2 (Open-Sora 1.2), for the docs' phone arithmetic: same block layout.
STDIT3_XL2 = {"depth": 28, "hidden": 1152, "heads": 16, "mlp_ratio": 4.0, "caption_dim": 4096}


def random_video_dit(cfg: VideoDiTConfig, seed: int = SEED) -> VideoDiT:
    """A fresh VideoDiT at `cfg`, every parameter drawn from N(0, 0.02^2) (adaLN tables N(0, 1/D)),
    seeded: every call builds the same weights."""
    with torch.random.fork_rng():  # construction draws from the global generator; leave it as it was
        torch.manual_seed(seed)
        model = VideoDiT(cfg)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            std = cfg.hidden**-0.5 if name.endswith("_table") else 0.02
            p.copy_(torch.randn(p.shape, generator=gen) * std)
    return model.eval().requires_grad_(False)


def weight_bytes(model: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def refuse_merge(name: str, merge: MergeConfig, why: str) -> None:
    """A generic --merge on a video model is an error, never silently dropped (`merge: null`)."""
    if merge.enabled:
        raise SpecError(f"{name} {why}; --merge {merge.describe()} does not apply to video models (video-dit-tiny, "
                        "video-dit-micro, video-dit-large); leave --merge out")


def _bundle(name: str, cfg: VideoDiTConfig, variants: dict[str, VideoMerge]) -> ModelBundle:
    model = random_video_dit(cfg)
    parts: dict[str, Exportable] = {stem: GuidedDenoiser(model, merge).eval() for stem, merge in variants.items()}
    manifest = {"pipeline": "video denoiser with random weights (for streaming measurements)",
                "model_config": dict(vars(cfg)), "weight_bytes": weight_bytes(model),
                "variants": {stem: {"tdtm": m.tdtm, "spatial_ratio": m.spatial.ratio} for stem, m in variants.items()}}
    return ModelBundle(name, parts, {}, manifest, {})


def build_video_dit_large(merge: MergeConfig) -> ModelBundle:
    """One guided denoiser (no merge); the generic ToMe config does not apply (refused, not ignored)."""
    refuse_merge("video-dit-large", merge, "exports one unmerged denoiser")
    return _bundle("video-dit-large", LARGE, {"denoiser": VideoMerge()})


def build_video_dit_micro(merge: MergeConfig) -> ModelBundle:
    refuse_merge("video-dit-micro", merge, "has its merges built in (spatial-ToMe and TDTM denoiser variants)")
    tome = SpatialMergeConfig(DEFAULT_SPATIAL_RATIO)
    return _bundle("video-dit-micro", MICRO, {"denoiser_tome": VideoMerge(spatial=tome),
                                              "denoiser_tdtm_tome": VideoMerge(tdtm=True, spatial=tome)})
