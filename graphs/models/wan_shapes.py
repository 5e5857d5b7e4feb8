"""`wan-shapes`: diffusers' `WanTransformer3DModel` (small config) trained on the moving-shapes clips.

The Wan architecture (full 3D self-attention with 3D RoPE, cross-attention to text, adaLN from
the timestep) on the data that trained `video-dit-tiny` (graphs/models/clips.py), so that TDTM and LPL can
be measured on a full-attention model that follows prompts. Pixel space, no VAE: a clip of 9
frames of 32 x 32 in [-1, 1] is the "latent" (1, 3, 9, 32, 32). Nine frames, as a Wan VAE latent
always has an odd frame count (frame 0 alone, then groups of 4 video frames): TDTM's odd-frame rule
then has a frame 0 to keep alone and four pairs to merge, as it would on Wan's real latents.

Text: the frozen MiniLM encoder that `video-dit-tiny` uses (graphs/models/text_context.py, 384 wide, 16
tokens), its states zeroed past each prompt's length as WanPipeline zeroes UMT5's; the
unconditional branch encodes the empty prompt "" the same way (WanPipeline's default negative
prompt). Flow matching as diffusers trains Wan: x_t = (1 - sigma) x0 + sigma noise, target
noise - x0, timestep = 1000 sigma (scripts/train_wan_shapes.py).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from ..errors import InputError
from .text_context import encode_captions
from .wan_text import zero_past_length

WEIGHTS = Path(__file__).resolve().parent / "weights" / "wan_shapes.safetensors"
MODEL_NAME = "wan-shapes"

# WanTransformer3DModel keyword arguments: 6 blocks of 4 heads x 24 (96 wide; head dim 24 splits
# into RoPE t/h/w = 8/8/8), FFN 384, 4 x 4 pixel patches (64 tokens a frame, 576 for 9 frames).
TRANSFORMER_CONFIG = {
    "patch_size": [1, 4, 4], "num_attention_heads": 4, "attention_head_dim": 24, "in_channels": 3,
    "out_channels": 3, "text_dim": 384, "freq_dim": 256, "ffn_dim": 384, "num_layers": 6,
    "cross_attn_norm": True, "qk_norm": "rms_norm_across_heads", "eps": 1e-6, "rope_max_seq_len": 64,
}
# The clip and caption the demo samples; the scheduler is Wan's shipped kind (UniPC, flow
# prediction), with the shift that the training draws its sigmas with.
DEMO = {"frames": 9, "size": 32, "caption_len": 16, "shift": 2.0}
SCHEDULER_CONFIG = {
    "_class_name": "UniPCMultistepScheduler", "num_train_timesteps": 1000, "prediction_type": "flow_prediction",
    "use_flow_sigmas": True, "flow_shift": DEMO["shift"], "solver_order": 2, "solver_type": "bh2",
    "lower_order_final": True, "final_sigmas_type": "zero", "predict_x0": True, "timestep_spacing": "linspace",
}


def wan_transformer(config: dict):
    """diffusers' WanTransformer3DModel from its keyword arguments; diffusers is an optional extra."""
    try:
        from diffusers import WanTransformer3DModel  # heavy import, only for the Wan models
    except ImportError:
        raise InputError("Wan models need diffusers: pip install 'tomobile[sd]' (diffusers==0.42.1)") from None
    return WanTransformer3DModel(**config)


def checkpoint_metadata(path: Path = WEIGHTS) -> dict:
    """The checkpoint's metadata: transformer `config`, `demo` settings, `train` record (JSON-decoded)."""
    if not path.is_file():
        raise InputError(f"no wan-shapes checkpoint at {path}; train one with scripts/train_wan_shapes.py")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        decoded = {key: json.loads(value) for key, value in meta.items()}
    except Exception as exc:  # safetensors raises its own error types for a damaged or foreign file
        raise InputError(f"{path} is not a wan-shapes checkpoint (safetensors with a transformer config in its "
                         f"metadata): {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    if not isinstance(decoded.get("config"), dict):
        raise InputError(f"{path} is not a wan-shapes checkpoint: its metadata has no transformer config; "
                         "scripts/train_wan_shapes.py writes one")
    return decoded


@functools.lru_cache(maxsize=2)
def load_wan_shapes(path: Path = WEIGHTS):
    """The trained transformer in eval mode, built from the config in the checkpoint's metadata."""
    model = wan_transformer(checkpoint_metadata(path)["config"])
    model.load_state_dict(load_file(str(path)))
    return model.eval().requires_grad_(False)


@torch.no_grad()
def caption_states(captions: list[str], length: int = DEMO["caption_len"]) -> torch.Tensor:
    """MiniLM states (B, L, 384), zeroed past each caption's length: the transformer's text input."""
    states, mask = encode_captions(captions, length)
    return zero_past_length(states, mask)
