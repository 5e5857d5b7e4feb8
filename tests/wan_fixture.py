"""A small diffusers WanPipeline built offline, for tests: UMT5 encoder, Wan transformer,
AutoencoderKLWan, a flow-matching scheduler and a WordLevel tokenizer, all from seeded configs
(the sizes diffusers' own Wan tests use). It saves with `save_pretrained` and loads back with
`WanPipeline.from_pretrained` (which needs accelerate: UMT5 keeps modules in fp32).

`WanParts` picks the sizes; a test that wants a configuration of its own changes a field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

WORDS = ("a", "an", "the", "red", "green", "blue", "yellow", "circle", "square", "triangle", "moving", "left",
         "right", "up", "down", "cat", "dog", "on", "in", "beach", "street", "at", "night")
PROMPT = "a red circle moving left"

# Wan 2.1 T2V's shipped scheduler_config.json (Wan-AI/Wan2.1-T2V-1.3B-Diffusers), keys as diffusers writes them.
WAN_UNIPC = {
    "_class_name": "UniPCMultistepScheduler", "_diffusers_version": "0.33.0.dev0", "beta_end": 0.02,
    "beta_schedule": "linear", "beta_start": 0.0001, "disable_corrector": [], "dynamic_thresholding_ratio": 0.995,
    "final_sigmas_type": "zero", "flow_shift": 3.0, "lower_order_final": True, "num_train_timesteps": 1000,
    "predict_x0": True, "prediction_type": "flow_prediction", "rescale_betas_zero_snr": False, "sample_max_value": 1.0,
    "solver_order": 2, "solver_p": None, "solver_type": "bh2", "steps_offset": 0, "thresholding": False,
    "timestep_spacing": "linspace", "trained_betas": None, "use_beta_sigmas": False, "use_exponential_sigmas": False,
    "use_flow_sigmas": True, "use_karras_sigmas": False,
}
EULER = {"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000, "shift": 3.0}


@dataclass(frozen=True)
class WanParts:
    """Sizes of the small pipeline. text_dim is the UMT5 width and the transformer's text_dim."""

    seed: int = 0
    text_dim: int = 32
    text_layers: int = 2
    heads: int = 2
    head_dim: int = 12
    layers: int = 2
    ffn: int = 32
    vae_dim: int = 3
    z_dim: int = 16
    scheduler: str = "unipc"  # unipc (Wan's shipped default) | euler (WanPipeline's own default)


def offline_tokenizer():
    """A WordLevel tokenizer in transformers' PreTrainedTokenizerFast, UMT5-like: ids 0 <pad>, 1 </s>,
    2 <unk>, lowercase words split on whitespace and punctuation, </s> appended."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def scheduler_config(kind: str) -> dict:
    return dict(WAN_UNIPC if kind == "unipc" else EULER)


def small_wan_pipeline(parts: WanParts = WanParts()):
    """A WanPipeline with seeded random weights (eval mode, fp32)."""
    import diffusers
    from diffusers import AutoencoderKLWan, WanPipeline, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(parts.seed)
    tokenizer = offline_tokenizer()
    text = UMT5EncoderModel(UMT5Config(vocab_size=len(tokenizer), d_model=parts.text_dim, d_kv=8, d_ff=2 * parts.text_dim,
                                       num_layers=parts.text_layers, num_heads=4, relative_attention_num_buckets=8,
                                       relative_attention_max_distance=16))
    transformer = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=parts.heads,
                                        attention_head_dim=parts.head_dim, in_channels=parts.z_dim,
                                        out_channels=parts.z_dim, text_dim=parts.text_dim, freq_dim=256,
                                        ffn_dim=parts.ffn, num_layers=parts.layers, cross_attn_norm=True,
                                        qk_norm="rms_norm_across_heads", rope_max_seq_len=32)
    gen = np.random.default_rng(parts.seed)  # the scaling, so that un-scaling is no identity
    vae = AutoencoderKLWan(base_dim=parts.vae_dim, z_dim=parts.z_dim, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True],
                           latents_mean=[round(float(v), 4) for v in gen.normal(0, 0.5, parts.z_dim)],
                           latents_std=[round(float(v), 4) for v in gen.uniform(0.8, 3.0, parts.z_dim)])
    config = scheduler_config(parts.scheduler)
    scheduler = getattr(diffusers, config["_class_name"]).from_config(config)
    pipe = WanPipeline(tokenizer=tokenizer, text_encoder=text.eval(), vae=vae.eval(), scheduler=scheduler,
                       transformer=transformer.eval())
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_and_load(pipe, folder: Path):
    """`save_pretrained` into `folder`, then `WanPipeline.from_pretrained` from it."""
    from diffusers import WanPipeline

    pipe.save_pretrained(str(folder))
    loaded = WanPipeline.from_pretrained(str(folder))
    loaded.set_progress_bar_config(disable=True)
    return loaded


def latent_shape(pipe, height: int, width: int, frames: int) -> tuple[int, ...]:
    """The pipeline's latent shape (1, z, F, h, w) for a clip of `frames` frames of height x width."""
    t, s = pipe.vae_scale_factor_temporal, pipe.vae_scale_factor_spatial
    return (1, int(pipe.transformer.config.in_channels), (frames - 1) // t + 1, height // s, width // s)


def pipeline_decode(pipe, latents: torch.Tensor) -> np.ndarray:
    """WanPipeline.__call__'s tail after sampling, as it is written there: un-scale the latents,
    vae.decode, post-process to "np" frames (1, N, H, W, 3)."""
    vae = pipe.vae
    mean = torch.tensor(vae.config.latents_mean).view(1, vae.config.z_dim, 1, 1, 1)
    inv_std = 1.0 / torch.tensor(vae.config.latents_std).view(1, vae.config.z_dim, 1, 1, 1)
    with torch.no_grad():
        video = vae.decode(latents / inv_std + mean, return_dict=False)[0]
    return pipe.video_processor.postprocess_video(video, output_type="np")
