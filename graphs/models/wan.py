"""Wan 2.1 text-to-video transformers (diffusers `WanTransformer3DModel`) as exportable models.

Built in, random seeded weights: `wan21-t2v-1.3b` (Wan 2.1 T2V 1.3B's exact config: 30 layers, 12
heads x 128, FFN 8960, text dim 4096, 16 latent channels, patch (1, 2, 2)) for speed and memory
work, and `wan-tiny` (the same structure, small) for tests. A local diffusers folder works too
(graphs/models/video_folder.py). Inputs are diffusers' forward arguments at a static shape:

    hidden_states          (1, 16, F, H/8, W/8)   latents, F = (frames - 1) / 4 + 1
    timestep               (1,)                   float, the scheduler's t in [0, 1000)
    encoder_hidden_states  (1, L, text_dim)       UMT5 states, L = 512 (WanPipeline's default)
    -> out_hidden_states   (1, 16, F, H/8, W/8)

The default clip of the built-ins is phone-sized: 256x256, 17 frames (5 latent frames of 16 x 16
patches, 1,280 tokens). Tokens are frame-major (f, h, w); the blocks get the rotary tables the model
computes from the input's shape, here frozen for the static shape (video_transformers.static_rope).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from ..methods.tdtm_attention import attention_modules
from ..spec.config import MergeConfig
from .exportable import Exportable, ModelBundle, TensorSpec
from .sd_unet import diffusers_class
from .video_transformers import ClipShape, VaeScale, VideoFamily, builtin_bundle, static_rope
from .wan_parts import split_wan

TRANSFORMER_CLASS = "WanTransformer3DModel"
# Wan 2.1 T2V 1.3B (Wan-AI/Wan2.1-T2V-1.3B-Diffusers transformer/config.json, as diffusers' converter writes it).
WAN21_T2V_1_3B: dict = dict(
    patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128, in_channels=16, out_channels=16,
    text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=30, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
    eps=1e-6, image_dim=None, added_kv_proj_dim=None, rope_max_seq_len=1024,
)
# The same structure, small: 2 layers, 2 heads x 12 (rotary split t/h/w = 4/4/4), text dim 32.
WAN_TINY: dict = {**WAN21_T2V_1_3B, "num_attention_heads": 2, "attention_head_dim": 12, "in_channels": 4,
                  "out_channels": 4, "text_dim": 32, "freq_dim": 32, "ffn_dim": 48, "num_layers": 2,
                  "rope_max_seq_len": 64}
TINY_TEXT_TOKENS = 8


def _load_class() -> type:
    return diffusers_class(TRANSFORMER_CLASS)  # diffusers is an optional extra: imported when a model is built


def _patch(config: dict) -> tuple[int, int, int]:
    return tuple(int(p) for p in config.get("patch_size", (1, 2, 2)))  # type: ignore[return-value]


def _vae_scale(vae_config: dict) -> VaeScale:
    """AutoencoderKLWan's config (scale_factor_spatial / _temporal; WanPipeline's defaults 8 and 4)."""
    return VaeScale(int(vae_config.get("scale_factor_spatial") or 8), int(vae_config.get("scale_factor_temporal") or 4))


def _check(config: dict, shape: ClipShape | None = None) -> None:
    """Text-to-video Wan 2.1 / 2.2 transformers only (the image-conditioned ones take image states
    too), on a token grid within the rotary table (rope_max_seq_len positions per axis)."""
    if config.get("image_dim") is not None or config.get("added_kv_proj_dim") is not None:
        raise InputError("this WanTransformer3DModel takes image embeddings (image_dim / added_kv_proj_dim: Wan "
                         "image-to-video); tomobile exports the text-to-video transformer (both unset)")
    limit = int(config.get("rope_max_seq_len", 1024))
    if shape is not None and max(shape.token_grid) > limit:
        raise InputError(f"--size {shape.height}x{shape.width} --frames {shape.frames} gives a token grid "
                         f"{'x'.join(map(str, shape.token_grid))}; this transformer's rotary table covers "
                         f"{limit} positions per axis (rope_max_seq_len)")


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Wan's rotary embedding of x (B, N, H, D) with tables (1, N, 1, D) (each value twice, pairs
    interleaved), as diffusers' WanAttnProcessor computes it, the rotated pairs stacked instead of
    written into an empty tensor (index writes, which ExecuTorch and Core ML do not lower)."""
    x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)  # (B, N, H, D/2) each
    c, s = cos[..., 0::2], sin[..., 1::2]  # (1, N, 1, D/2)
    return torch.stack([x1 * c - x2 * s, x1 * s + x2 * c], dim=-1).flatten(-2).type_as(x)  # (B, N, H, D)


class WanStaticAttnProcessor:
    """diffusers' WanAttnProcessor for text-to-video (no image keys, unfused projections). What it
    changes from the original: `rotate` spells the rotary embedding without index writes, and the
    attention is torch's scaled_dot_product_attention called directly (diffusers' native backend)."""

    def __call__(self, attn: nn.Module, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None,
                 rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        query = attn.norm_q(attn.to_q(hidden_states)).unflatten(2, (attn.heads, -1))  # (B, N, H, D)
        key = attn.norm_k(attn.to_k(context)).unflatten(2, (attn.heads, -1))  # (B, M, H, D)
        value = attn.to_v(context).unflatten(2, (attn.heads, -1))  # (B, M, H, D)
        if rotary_emb is not None:
            query, key = rotate(query, *rotary_emb), rotate(key, *rotary_emb)
        out = F.scaled_dot_product_attention(query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2),
                                             attn_mask=attention_mask)  # (B, H, N, D)
        out = out.transpose(1, 2).flatten(2, 3).type_as(query)  # (B, N, H*D)
        return attn.to_out[1](attn.to_out[0](out))


def prepare(transformer: nn.Module, shape: ClipShape) -> nn.Module:
    """Freeze the rotary tables for `shape` (diffusers' own `rope` output, float32) and give every
    attention the static processor; the weights and state-dict keys stay as they are."""
    probe = torch.zeros(1, 1, *shape.latent)  # only its shape is read
    transformer.rope = static_rope(transformer.rope(probe))
    for attn in attention_modules(transformer):
        attn.processor = WanStaticAttnProcessor()
    return transformer


class WanTransformer(Exportable):
    """A WanTransformer3DModel at one static clip shape, called as diffusers calls it (return_dict=False)."""

    output_names = ("out_hidden_states",)

    def __init__(self, transformer: nn.Module, shape: ClipShape, text_tokens: int) -> None:
        super().__init__()
        self.transformer = transformer
        self.tokens = shape.tokens
        c = transformer.config
        self.input_specs = (
            TensorSpec("hidden_states", (1, c.in_channels, *shape.latent)),
            TensorSpec("timestep", (1,)),
            TensorSpec("encoder_hidden_states", (1, text_tokens, c.text_dim)),
        )

    def example_inputs(self, seed: int = 0) -> tuple[torch.Tensor, ...]:
        gen = torch.Generator().manual_seed(seed)
        latents, _, text = (spec.example(gen) for spec in self.input_specs)
        return latents, torch.rand(1, generator=gen) * 1000, text

    def forward(self, hidden_states: torch.Tensor, timestep: torch.Tensor,
                encoder_hidden_states: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.transformer(hidden_states, timestep, encoder_hidden_states, return_dict=False)[0],)


WAN = VideoFamily(
    name="Wan 2.1", transformer_class=TRANSFORMER_CLASS, pipeline_classes=("WanPipeline",), vae=VaeScale(8, 4),
    text_tokens=512, default_size=(256, 256), default_frames=17, load_class=_load_class, patch=_patch,
    vae_scale=_vae_scale, check=_check, prepare=prepare, wrap=WanTransformer, split=split_wan)


def wan21_t2v_1_3b(config: MergeConfig, size: str | None = None, frames: int | None = None,
                   tdtm_odd: str | None = None) -> ModelBundle:
    return builtin_bundle("wan21-t2v-1.3b", WAN, WAN21_T2V_1_3B, config, size, frames, tdtm_odd)


def wan_tiny(config: MergeConfig, size: str | None = None, frames: int | None = None,
             tdtm_odd: str | None = None) -> ModelBundle:
    return builtin_bundle("wan-tiny", WAN, WAN_TINY, config, size, frames, tdtm_odd, TINY_TEXT_TOKENS)
