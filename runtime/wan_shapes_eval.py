"""`wan-shapes` through the eval of `tomobile eval video`: prompt following and speed per setting.

The model (graphs/models/wan_shapes.py) samples in pixel space on its scheduler (UniPC, flow prediction,
shift 2), with WanPipeline's guidance around two transformer calls per step (the caption's MiniLM
states, zeroed past its tokens, and the empty prompt's) from the portable noise of
runtime/noise.py. Settings: full steps, LPL after half of them, LPL auto, and, where a TDTM
variant of the transformer is given, TDTM for the first half / all steps and LPL + TDTM. The
bookkeeping (interleaving, detector, PSNR / SSIM against the full clip, the table) is
runtime/video_eval.py's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..graphs.methods.tdtm_attention import TdtmRule, tdtm_twin
from ..graphs.models.wan_shapes import DEMO, SCHEDULER_CONFIG, WEIGHTS, caption_states, load_wan_shapes
from .flow_sampler import FlowSamplerConfig, guided, sample_flow
from .flow_schedule import flow_schedule
from .noise import latent_noise
from .sampler import LeapConfig
from .video import Generation, RuntimeKind, check_prompt, frames_from_latent
from .video_eval import PROMPTS, Setting

# The 12 prompts of video-dit-tiny's eval and 4 more: every colour, shape and direction 5 or 6 times.
PROMPTS16 = PROMPTS + (
    "a blue triangle moving left",
    "a yellow circle moving right",
    "a red square moving down",
    "a green triangle moving up",
)
STEPS, GUIDANCE = 30, 5.0

TransformerFn = Callable[[np.ndarray, float, np.ndarray], np.ndarray]  # (x, timestep, states) -> v


@dataclass
class WanShapesRuntime:
    """The eval's view of wan-shapes: transformer variants ('denoiser', 'denoiser_tdtm') and the
    caption encoder, numpy in and out."""

    kind: RuntimeKind
    denoisers: dict[str, TransformerFn]
    encode: Callable[[str], np.ndarray]  # caption -> states (1, L, 384), zeroed past its tokens
    shape: tuple[int, ...]  # (1, 3, F, H, W)


def torch_transformer(model: torch.nn.Module) -> TransformerFn:
    @torch.no_grad()
    def run(x: np.ndarray, t: float, states: np.ndarray) -> np.ndarray:
        out = model(hidden_states=torch.from_numpy(np.ascontiguousarray(x)), timestep=torch.tensor([t]),
                    encoder_hidden_states=torch.from_numpy(states), return_dict=False)[0]
        return out.numpy()

    return run


def tdtm_rule(model: torch.nn.Module) -> TdtmRule:
    """The TDTM rule at the demo's clip: 9 latent frames (frame 0 alone, then 4 pairs) of
    (size / patch)^2 tokens each, the default odd-frame mode of `--merge tdtm`."""
    pt, ph, pw = model.config.patch_size
    return TdtmRule(frames=DEMO["frames"] // pt, tokens_per_frame=(DEMO["size"] // ph) * (DEMO["size"] // pw))


def eager_wan_shapes(path: Path = WEIGHTS, with_tdtm: bool = True) -> WanShapesRuntime:
    """The checkpoint in PyTorch; `with_tdtm` adds its TDTM variant 'denoiser_tdtm' (the same weights,
    diffusers' own modules, the TDTM rule of `--merge tdtm` patched into every attention)."""
    model = load_wan_shapes(path)
    denoisers = {"denoiser": torch_transformer(model)}
    if with_tdtm:
        denoisers["denoiser_tdtm"] = torch_transformer(tdtm_twin(model, tdtm_rule(model)))
    cache: dict[str, np.ndarray] = {}

    def encode(caption: str) -> np.ndarray:
        if caption not in cache:
            cache[caption] = caption_states([caption], DEMO["caption_len"]).numpy()
        return cache[caption]

    shape = (1, 3, DEMO["frames"], DEMO["size"], DEMO["size"])
    return WanShapesRuntime(RuntimeKind.EAGER, denoisers, encode, shape)


def sampler(steps: int = STEPS, guidance: float = GUIDANCE) -> FlowSamplerConfig:
    return FlowSamplerConfig(flow_schedule(SCHEDULER_CONFIG, steps), guidance=guidance)


def generate_clip(rt: WanShapesRuntime, prompt: str, seed: int, cfg: FlowSamplerConfig,
                  spatial: bool = False) -> Generation:
    """One clip, as runtime/video.generate makes one for video-dit-tiny (`spatial` is not offered)."""
    check_prompt(prompt)
    if spatial:
        raise ValueError("wan-shapes has no spatial ToMe variant")
    cond, uncond = rt.encode(prompt), rt.encode("")  # WanPipeline's default negative prompt
    used: set[str] = set()

    def denoise(x: np.ndarray, t: float, states: np.ndarray, merged: bool) -> np.ndarray:
        name = "denoiser_tdtm" if merged else "denoiser"
        used.add(name)
        return rt.denoisers[name](x, t, states)

    start = time.perf_counter()
    result = sample_flow(guided(denoise, cond, uncond, cfg.guidance), latent_noise(rt.shape, seed), cfg)
    return Generation(frames_from_latent(result.x), result, time.perf_counter() - start, sorted(used))


def warm_up(rt: WanShapesRuntime) -> None:
    """One call per variant, so that first-call costs stay out of the timings."""
    x, states = np.zeros(rt.shape, np.float32), rt.encode(PROMPTS16[0])
    for run in rt.denoisers.values():
        run(x, 500.0, states)


def wan_shapes_settings(base: FlowSamplerConfig, with_tdtm: bool) -> list[Setting]:
    """full N; LPL after N/2; LPL auto; with a TDTM variant also TDTM N/2, TDTM all, LPL N/2 + TDTM N/2."""
    half, steps = base.schedule.steps // 2, base.schedule.steps
    rows = [Setting("full", base), Setting(f"lpl{half}", replace(base, leap=LeapConfig.parse(str(half)))),
            Setting("lpl-auto", replace(base, leap=LeapConfig.parse("auto")))]
    if with_tdtm:
        rows += [Setting(f"tdtm{half}", replace(base, tdtm_steps=half)),
                 Setting("tdtm-all", replace(base, tdtm_steps=steps)),
                 Setting(f"lpl{half}+tdtm{half}", replace(base, leap=LeapConfig.parse(str(half)), tdtm_steps=half))]
    return rows
