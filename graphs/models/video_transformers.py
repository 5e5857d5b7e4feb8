"""diffusers video transformers (Wan 2.1, LTX-Video) at a static clip shape, as exportable bundles.

A family (graphs/models/wan.py, graphs/models/ltx.py) is a `VideoFamily`: the diffusers transformer class, the
pipelines it comes in, its VAE's default scale factors, how to check a config and how to wrap the
transformer for export. Everything here is family-blind:

- `clip_shape`: `--size HxW` and `--frames N` (video pixels and frames, the pipeline's height,
  width, num_frames) -> the latent grid, checked against the VAE (a causal video VAE takes
  temporal * k + 1 frames: latent frames = (N - 1) / temporal + 1) and the patch size;
- `static_rope`: the rotary tables diffusers' own `rope` module computes for that grid, frozen as
  float32 constants (Wan computes them in float64, which Core ML and XNNPACK do not run);
- `video_bundle`: the plain transformer (`transformer`) and, with `--merge tdtm`, the TDTM one
  (`transformer_tdtm`, graphs/methods/tdtm_attention.py) on the same weights, one artifact group per format;
- `load_video_folder`: a local diffusers transformer folder or a pipeline folder (model_index.json).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import InputError
from ..methods.tdtm import TdtmOdd
from ..methods.tdtm_attention import METHOD as TDTM
from ..methods.tdtm_attention import TdtmRule, tdtm_twin
from ..numbers import parse_pixel_size
from ..spec.config import MergeConfig
from ..spec.grammar import SpecError
from .exportable import Exportable, ModelBundle, seeded

PLAIN, MERGED = "transformer", "transformer_tdtm"  # artifact stems: transformer.onnx, transformer_tdtm.onnx, ...
CONFIG_FILE = "transformer/config.json"  # diffusers' pipeline layout
VIDEO_OPTIONS = ("size", "frames", "tdtm_odd")
WEIGHTS = "diffusion_pytorch_model.safetensors"


@dataclass(frozen=True)
class VaeScale:
    """A video VAE's compression: pixels per latent side, video frames per latent frame (after the first)."""

    spatial: int
    temporal: int


@dataclass(frozen=True)
class ClipShape:
    """A clip's static shape: video pixels and frames, and the latent grid (frames, height, width)."""

    height: int
    width: int
    frames: int
    latent: tuple[int, int, int]
    patch: tuple[int, int, int]  # (t, h, w) latent cells per token
    vae: VaeScale

    @property
    def token_grid(self) -> tuple[int, int, int]:
        return tuple(n // p for n, p in zip(self.latent, self.patch, strict=True))  # type: ignore[return-value]

    @property
    def tokens_per_frame(self) -> int:
        return self.token_grid[1] * self.token_grid[2]

    @property
    def tokens(self) -> int:
        return self.token_grid[0] * self.tokens_per_frame

    def to_json(self) -> dict:
        return {"height": self.height, "width": self.width, "frames": self.frames, "latent": list(self.latent),
                "patch": list(self.patch), "tokens": self.tokens,
                "vae_scale": {"spatial": self.vae.spatial, "temporal": self.vae.temporal}}


def pixel_size(size: str | int | tuple[int, int]) -> tuple[int, int]:
    """`--size` as (height, width): already a pair, one number for a square, or 'HxW'."""
    if isinstance(size, tuple):
        return size
    return (size, size) if isinstance(size, int) else parse_pixel_size(size)


def clip_shape(family: VideoFamily, vae: VaeScale, patch: tuple[int, int, int], size: str | int | tuple[int, int],
               frames: int) -> ClipShape:
    """The latent grid for a clip of `size` pixels and `frames` video frames; a size or frame count
    the VAE (or the patch) cannot take is a one-line error naming the allowed values."""
    h, w = pixel_size(size)
    step_h, step_w = vae.spatial * patch[1], vae.spatial * patch[2]
    if h <= 0 or w <= 0 or h % step_h or w % step_w:
        sides = f"heights and widths that are multiples of {step_h}" if step_h == step_w else \
            f"heights that are multiples of {step_h} and widths that are multiples of {step_w}"
        raise InputError(f"--size {h}x{w}: {family.name} takes {sides} (its VAE's {vae.spatial}x times the "
                         f"{patch[1]}x{patch[2]} patches), e.g. {family.default_size[0]}x{family.default_size[1]}")
    t = vae.temporal
    examples = ", ".join(str(t * k + 1) for k in range(5))
    if frames < 1 or (frames - 1) % t:
        raise InputError(f"--frames {frames}: {family.name}'s VAE takes {t}k+1 frames ({examples}, ...); latent "
                         f"frames = (frames - 1) / {t} + 1")
    latent = ((frames - 1) // t + 1, h // vae.spatial, w // vae.spatial)
    if latent[0] % patch[0]:
        raise InputError(f"--frames {frames}: {latent[0]} latent frames do not split into temporal patches of "
                         f"{patch[0]}")
    return ClipShape(h, w, frames, latent, patch, vae)


@dataclass(frozen=True)
class VideoFamily:
    """What tomobile knows about one diffusers video transformer class (graphs/models/wan.py, graphs/models/ltx.py)."""

    name: str  # in messages: "Wan 2.1"
    transformer_class: str  # config.json's _class_name
    pipeline_classes: tuple[str, ...]  # model_index.json's _class_name
    vae: VaeScale  # the pipeline's defaults without a VAE
    text_tokens: int  # the pipeline's default max_sequence_length
    default_size: tuple[int, int]  # of the built-ins: phone-sized
    default_frames: int
    load_class: Callable[[], type]  # the diffusers class (deferred: diffusers is an optional extra)
    patch: Callable[[dict], tuple[int, int, int]]  # (t, h, w) from the transformer's config
    vae_scale: Callable[[dict], VaeScale]  # from the pipeline's vae/config.json
    check: Callable[[dict, ClipShape], None]  # refuse a config (or a shape it cannot take) in one line
    prepare: Callable[[nn.Module, ClipShape], nn.Module]  # static rope + export-friendly processors, in place
    wrap: Callable[[nn.Module, ClipShape, int], Exportable]  # (transformer, shape, text tokens) -> exportable
    split: Callable[[ModelBundle, str], ModelBundle] | None = None  # `--split blocks`, where the family has one


def static_rope(tables: tuple[torch.Tensor, ...]) -> nn.Module:
    """A module standing in for a transformer's `rope`: returns the given tables (float32 constants)
    whatever it is called with."""
    return StaticRope(*(t.float() for t in tables))


class StaticRope(nn.Module):
    """The rotary tables of one static grid, computed once by diffusers' own rope module. What it
    changes from the original: the tables are constants (float32) instead of computed per call."""

    def __init__(self, cos: torch.Tensor, sin: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def forward(self, *args, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cos, self.sin


def tdtm_rule(config: MergeConfig, shape: ClipShape, odd: str | TdtmOdd | None) -> TdtmRule | None:
    """The TDTM rule of `--merge tdtm` (or of its token-drop oracle `drop:tdtm`, a speed baseline) at this
    shape, None for `none`; other methods are refused."""
    oracle = config.drops and config.params.like == TDTM
    if config.method == TDTM or oracle:
        return TdtmRule(shape.token_grid[0], shape.tokens_per_frame, TdtmOdd(odd or TdtmOdd.FIRST), drop=oracle)
    if config.enabled:
        raise SpecError(f"--merge {config.describe()} does not apply to diffusers video transformers; they take "
                        f"none or tdtm (latent frame pairs merged in attention)")
    if odd is not None:
        raise InputError("--tdtm-odd applies with --merge tdtm")
    return None


def video_bundle(name: str, family: VideoFamily, transformer: nn.Module, config: MergeConfig, shape: ClipShape,
                 tdtm_odd: str | None = None, text_tokens: int | None = None,
                 config_json: str | None = None) -> ModelBundle:
    """The transformer at `shape` (part `transformer`) and, for `--merge tdtm`, its TDTM twin on the same
    weights (part `transformer_tdtm`), with the transformer's config.json in diffusers' layout."""
    family.check(dict(transformer.config), shape)
    rule = tdtm_rule(config, shape, tdtm_odd)
    text = text_tokens or family.text_tokens
    family.prepare(transformer.eval().requires_grad_(False), shape)
    parts = {PLAIN: family.wrap(transformer, shape, text).eval()}
    if rule is not None:
        parts[MERGED] = family.wrap(tdtm_twin(transformer, rule), shape, text).eval()
    manifest = {
        "pipeline": {"kind": "diffusers-video-transformer", "class": family.transformer_class, **shape.to_json(),
                     "text_tokens": text, "layout": "diffusers"},
        "merge": rule.to_json() if rule else {"method": "none"},
        "variants": {PLAIN: {"tdtm": False}, **({MERGED: merged_variant(rule)} if rule else {})},
    }
    files = {CONFIG_FILE: config_json or transformer_config_json(transformer)}
    return ModelBundle(name, parts, manifest=manifest, generated_files=files, splitter=family.split)


def merged_variant(rule: TdtmRule) -> dict:
    """The manifest's entry for the merged part: TDTM, or its token-drop oracle (bench's baseline)."""
    return {"tdtm": True, "drop": True} if rule.drop else {"tdtm": True}


def builtin_bundle(name: str, family: VideoFamily, arch: dict, config: MergeConfig, size: str | None,
                   frames: int | None, tdtm_odd: str | None, text_tokens: int | None = None) -> ModelBundle:
    """A built-in: the family's transformer at `arch` with seeded weights, at `size` x `frames` (the
    family's phone-sized default where None). Bad input is refused before the (at 1-2B, slow) build."""
    shape = clip_shape(family, family.vae, family.patch(arch), size or family.default_size,
                       frames or family.default_frames)
    family.check(arch, shape)
    tdtm_rule(config, shape, tdtm_odd)
    return video_bundle(name, family, seeded_transformer(family, arch), config, shape, tdtm_odd, text_tokens)


def transformer_config_json(transformer: nn.Module) -> str:
    """diffusers' config.json of the transformer (what `from_config` reads back)."""
    return json.dumps(dict(transformer.config, _class_name=type(transformer).__name__), indent=2, sort_keys=True,
                      default=list) + "\n"


def seeded_transformer(family: VideoFamily, arch: dict, seed: int = 0) -> nn.Module:
    """The family's transformer at `arch`, random weights from `seed` (every machine builds the same)."""
    cls = family.load_class()
    return seeded(lambda: cls(**arch), seed)


def read_json(path: Path) -> dict | None:
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return raw if isinstance(raw, dict) else None
