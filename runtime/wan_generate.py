"""A WanPipeline run from its parts, numpy in and numpy out: what `generate` does on any runtime.

    encode(prompt) -> prompt_embeds (1, L, D)          (runtime/wan_prompt.py + graphs/models/wan_text.py)
    denoise(x, timestep, prompt_embeds, merged) -> v    (the transformer; `merged`: its TDTM variant)
    decode(latents) -> frames (1, N, H, W, 3) in [0, 1] (graphs/models/wan_vae.py)

The steps follow WanPipeline.__call__: encode the prompt and, with guidance > 1, the negative
prompt ("" by default); sample from the given latents with the numpy sampler
(runtime/flow_sampler.py: the scheduler's steps, WanPipeline's guidance, LPL and TDTM steps);
decode. The eager callables below wrap PyTorch modules for references and tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .flow_sampler import DenoiseFn, FlowSamplerConfig, guided, sample_flow
from .sampler import SampleResult
from .wan_prompt import tokenize
from .wan_stream import StreamedRun


@dataclass(frozen=True)
class WanRun:
    """The three callables of a Wan pipeline (numpy in, numpy out)."""

    encode: Callable[[str], np.ndarray]
    denoise: DenoiseFn
    decode: Callable[[np.ndarray], np.ndarray]
    streamed: StreamedRun | None = None  # a split export's: the streamer and the per-call loads


@dataclass
class WanClip:
    frames: np.ndarray  # (1, N, H, W, 3) float32 in [0, 1], as WanPipeline(output_type="np").frames
    latents: np.ndarray  # the sampled latents (1, z, F, h, w), before the VAE's un-scaling
    result: SampleResult


def wan_generate(run: WanRun, prompt: str, latents: np.ndarray, cfg: FlowSamplerConfig,
                 negative_prompt: str = "") -> WanClip:
    """One clip from `latents` (the starting noise, (1, z, F, h, w) float32), as WanPipeline."""
    cond = run.encode(prompt)
    uncond = run.encode(negative_prompt) if cfg.guidance > 1.0 else None
    result = sample_flow(guided(run.denoise, cond, uncond, cfg.guidance), np.asarray(latents, np.float32), cfg)
    return WanClip(run.decode(result.x), result.x, result)


def eager_encoder(tokenizer, text_encoder: torch.nn.Module, length: int) -> Callable[[str], np.ndarray]:
    """prompt -> prompt_embeds with a PyTorch text encoder (graphs/models/wan_text.WanTextEncoder)."""

    @torch.no_grad()
    def encode(prompt: str) -> np.ndarray:
        ids, mask = tokenize(tokenizer, prompt, length)
        return text_encoder(torch.from_numpy(ids), torch.from_numpy(mask))[0].numpy()

    return encode


def eager_transformer(transformer: torch.nn.Module) -> DenoiseFn:
    """diffusers' WanTransformer3DModel as a denoiser (plain: `merged` must be False)."""

    @torch.no_grad()
    def denoise(x: np.ndarray, t: float, states: np.ndarray, merged: bool) -> np.ndarray:
        if merged:
            raise ValueError("the plain transformer has no TDTM variant")
        out = transformer(hidden_states=torch.from_numpy(np.ascontiguousarray(x)),
                          timestep=torch.tensor([t], dtype=torch.float32),
                          encoder_hidden_states=torch.from_numpy(states), return_dict=False)[0]
        return out.numpy()

    return denoise


def eager_module(module: torch.nn.Module) -> Callable[..., np.ndarray]:
    """A one-output PyTorch module as numpy in, numpy out (the VAE decoder)."""

    @torch.no_grad()
    def run(*arrays: np.ndarray) -> np.ndarray:
        return module(*(torch.from_numpy(np.ascontiguousarray(a)) for a in arrays))[0].numpy()

    return run
