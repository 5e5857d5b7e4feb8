"""LTX-Video transformers (diffusers `LTXVideoTransformer3DModel`) as exportable models.

Built in, random seeded weights: `ltx-video` (LTX-Video's ~2B config, the class defaults that
diffusers' converter builds: 28 layers, 32 heads x 64, cross-attention 2048, caption channels 4096,
128 latent channels, patch 1 x 1) and `ltx-tiny` (the same structure, small) for tests. Inputs are
diffusers' forward arguments at a static shape (tokens already packed, as LTXPipeline sends them):

    hidden_states           (1, F*h*w, 128)   packed latents, F = (frames - 1) / 8 + 1, h = H/32, w = W/32
    timestep                (1,)              float, the scheduler's t in [0, 1000)
    encoder_hidden_states   (1, L, 4096)      T5 states, L = 128 (LTXPipeline's default)
    encoder_attention_mask  (1, L)            1 for a text token, 0 for padding (float32)
    -> out_hidden_states    (1, F*h*w, 128)

num_frames, height, width and rope_interpolation_scale (LTXPipeline's: VAE temporal ratio / frame
rate 25, spatial ratio, spatial ratio) are fixed at export: the RoPE coordinates of the static grid
are computed once by diffusers' own rope module. The default clip of the built-ins is 512x512, 33
frames (5 latent frames of 16 x 16, 1,280 tokens: the token count of Wan's default).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import InputError
from ..spec.config import MergeConfig
from .exportable import Exportable, ModelBundle, TensorSpec
from .sd_unet import diffusers_class
from .video_transformers import ClipShape, VaeScale, VideoFamily, builtin_bundle, static_rope

TRANSFORMER_CLASS = "LTXVideoTransformer3DModel"
FRAME_RATE = 25  # LTXPipeline's default frame_rate: its RoPE's temporal scale is vae_temporal / frame_rate
# LTX-Video 0.9 (Lightricks/LTX-Video transformer/config.json: LTXVideoTransformer3DModel's defaults).
LTX_VIDEO: dict = dict(
    in_channels=128, out_channels=128, patch_size=1, patch_size_t=1, num_attention_heads=32, attention_head_dim=64,
    cross_attention_dim=2048, num_layers=28, activation_fn="gelu-approximate", qk_norm="rms_norm_across_heads",
    norm_elementwise_affine=False, norm_eps=1e-6, caption_channels=4096, attention_bias=True, attention_out_bias=True,
)
# The same structure, small: 2 layers, 2 heads x 12 (width 24 = the cross-attention width), captions 32 wide.
LTX_TINY: dict = {**LTX_VIDEO, "in_channels": 8, "out_channels": 8, "num_attention_heads": 2, "attention_head_dim": 12,
                  "cross_attention_dim": 24, "num_layers": 2, "caption_channels": 32}
TINY_TEXT_TOKENS = 8


def _load_class() -> type:
    return diffusers_class(TRANSFORMER_CLASS)  # diffusers is an optional extra: imported when a model is built


def _patch(config: dict) -> tuple[int, int, int]:
    return int(config.get("patch_size_t", 1)), int(config.get("patch_size", 1)), int(config.get("patch_size", 1))


def _vae_scale(vae_config: dict) -> VaeScale:
    """AutoencoderKLLTXVideo's compression ratios: given, or patch size x 2 per scaling level (32 and 8)."""
    levels = 2 ** sum(bool(s) for s in vae_config.get("spatio_temporal_scaling", (True, True, True, False)))
    spatial = vae_config.get("spatial_compression_ratio") or int(vae_config.get("patch_size", 4)) * levels
    temporal = vae_config.get("temporal_compression_ratio") or int(vae_config.get("patch_size_t", 1)) * levels
    return VaeScale(int(spatial), int(temporal))


def _check(config: dict, shape: ClipShape | None = None) -> None:
    """LTXPipeline feeds the latent grid itself to the RoPE: only 1 x 1 x 1 patches match its token count."""
    if _patch(config) != (1, 1, 1):
        t, h, w = _patch(config)
        raise InputError(f"this LTXVideoTransformer3DModel has patches of {t} x {h} x {w} (patch_size_t, patch_size); "
                         "tomobile exports 1 x 1 x 1, the one LTXPipeline runs")


def rope_interpolation_scale(vae: VaeScale) -> tuple[float, float, float]:
    """What LTXPipeline passes the transformer: (VAE temporal ratio / frame rate, spatial, spatial)."""
    return vae.temporal / FRAME_RATE, float(vae.spatial), float(vae.spatial)


def prepare(transformer: nn.Module, shape: ClipShape) -> nn.Module:
    """Freeze the RoPE tables of `shape` (diffusers' own rope module at LTXPipeline's interpolation
    scale); the attention processors stay diffusers' own."""
    f, h, w = shape.latent
    probe = torch.zeros(1, shape.tokens, 1)  # only its batch size and device are read
    scale = rope_interpolation_scale(shape.vae)
    transformer.rope = static_rope(transformer.rope(probe, f, h, w, scale))
    return transformer


class LtxTransformer(Exportable):
    """An LTXVideoTransformer3DModel at one static clip shape, called as LTXPipeline calls it."""

    output_names = ("out_hidden_states",)

    def __init__(self, transformer: nn.Module, shape: ClipShape, text_tokens: int) -> None:
        super().__init__()
        self.transformer = transformer
        self.grid = shape.latent
        c = transformer.config
        self.input_specs = (
            TensorSpec("hidden_states", (1, shape.tokens, c.in_channels)),
            TensorSpec("timestep", (1,)),
            TensorSpec("encoder_hidden_states", (1, text_tokens, c.caption_channels)),
            TensorSpec("encoder_attention_mask", (1, text_tokens)),
        )

    def example_inputs(self, seed: int = 0) -> tuple[torch.Tensor, ...]:
        gen = torch.Generator().manual_seed(seed)
        latents, _, text, _ = (spec.example(gen) for spec in self.input_specs)
        length = text.shape[1]
        mask = (torch.arange(length) < max(1, (3 * length) // 4)).float()[None]  # (1, L): a padded prompt
        return latents, torch.rand(1, generator=gen) * 1000, text, mask

    def forward(self, hidden_states: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor,
                encoder_attention_mask: torch.Tensor) -> tuple[torch.Tensor]:
        f, h, w = self.grid
        return (self.transformer(hidden_states, encoder_hidden_states, timestep, encoder_attention_mask,
                                 num_frames=f, height=h, width=w, return_dict=False)[0],)


LTX = VideoFamily(
    name="LTX-Video", transformer_class=TRANSFORMER_CLASS, pipeline_classes=("LTXPipeline",), vae=VaeScale(32, 8),
    text_tokens=128, default_size=(512, 512), default_frames=33, load_class=_load_class, patch=_patch,
    vae_scale=_vae_scale, check=_check, prepare=prepare, wrap=LtxTransformer)


def ltx_video(config: MergeConfig, size: str | None = None, frames: int | None = None,
              tdtm_odd: str | None = None) -> ModelBundle:
    return builtin_bundle("ltx-video", LTX, LTX_VIDEO, config, size, frames, tdtm_odd)


def ltx_tiny(config: MergeConfig, size: str | None = None, frames: int | None = None,
             tdtm_odd: str | None = None) -> ModelBundle:
    return builtin_bundle("ltx-tiny", LTX, LTX_TINY, config, size, frames, tdtm_odd, TINY_TEXT_TOKENS)
