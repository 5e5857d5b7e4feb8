"""Stable Diffusion UNets (diffusers `UNet2DConditionModel`) as exportable models, with tomesd.

Built in: `sd-unet-tiny` (SD-1.5's block structure at small widths, for tests) and `sd15-unet`
(SD-1.5's exact UNet config, ~860M parameters, for speed work); both random seeded weights. A
local diffusers folder (a UNet folder with config.json + safetensors, or a pipeline folder with
unet/) exports the checkpoint's weights. The latent size is fixed per export (`size` in pixels,
latent = size / 8, default the config's sample_size); `cfg=True` exports batch 2, the
unconditional and conditional halves of classifier-free guidance in one call.

The export folder keeps diffusers' layout: `unet/config.json` beside `unet/model.onnx` (where
optimum's ONNX Runtime Stable Diffusion pipeline looks for its UNet), `unet/model.pte` and
`unet/model.mlpackage`. Inputs and outputs carry optimum's ONNX names: sample,
timestep, encoder_hidden_states -> out_sample.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from ..errors import InputError
from ..methods.merge import ARITHMETIC
from ..methods.ops import MergeOps, using_ops
from ..methods.spatial_merge import SpatialOps
from ..methods.tomesd import METHOD, TomesdConfig, apply_tomesd, spatial_ops
from ..methods.tomesd import SPEC_HELP as TOMESD_HELP
from ..spec.config import MergeConfig
from ..spec.grammar import SpecError
from .exportable import Exportable, ModelBundle, TensorSpec, seeded

PART = "unet/model"  # artifact stem: unet/model.onnx, unet/model.pte, unet/model.mlpackage
VAE_SCALE = 8  # latent = image / 8 for every Stable Diffusion VAE
# Largest --size: 4 x SD-1.5's 512 px (a 256 x 256 latent, 65536 tokens in the first attention
# blocks). Beyond it one typo asked for petabytes (99999992 px: a 2.5 PB allocation).
MAX_SIZE = 2048
TEXT_TOKENS = 77  # CLIP text encoder length
SD_OPTIONS = ("size", "cfg")
UNET_CLASS = "UNet2DConditionModel"

# SD-1.5's UNet (runwayml/stable-diffusion-v1-5 unet/config.json, the architecture fields).
SD15: dict = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32, act_fn="silu", center_input_sample=False,
    downsample_padding=1, flip_sin_to_cos=True, freq_shift=0, mid_block_scale_factor=1, norm_eps=1e-5,
)
# The same structure (4 levels, 2 layers per block, cross-attention at the first 3) at small widths.
SD_TINY: dict = {**SD15, "sample_size": 16, "block_out_channels": (32, 32, 64, 64), "cross_attention_dim": 32,
                 "attention_head_dim": 4, "norm_num_groups": 8}


class UNetModel(Exportable):
    """sample (B, 4, h, w), timestep (1,) int64 in [0, 1000), encoder_hidden_states (B, 77, C)
    -> out_sample (B, 4, h, w): the UNet's noise prediction. B = 2 for classifier-free guidance.

    One timestep for the whole batch, broadcast to B inside the graph (diffusers' UNet expands it):
    what optimum's ORT pipeline sends, whose guidance halves share the step."""

    def __init__(self, unet: nn.Module, latent: int, batch: int, merge: TomesdConfig | None = None,
                 drop: bool = False) -> None:
        """`merge`: tomesd patched into every block that merges (`drop`: its token-drop oracle)."""
        super().__init__()
        self.unet = unet.eval().requires_grad_(False)
        cfg = unet.config
        self.input_specs = (
            TensorSpec("sample", (batch, cfg.in_channels, latent, latent)),
            TensorSpec("timestep", (1,), "int64", low=0, high=1000),
            TensorSpec("encoder_hidden_states", (batch, TEXT_TOKENS, cfg.cross_attention_dim)),
        )
        self.output_names = ("out_sample",)
        self.merge, self.drop = merge, drop
        self.plans = apply_tomesd(unet, merge, self.example_inputs(), drop=drop) if merge else []

    def spelling(self, ops: MergeOps, fmt: str | None) -> tuple[SpatialOps, ...]:
        """The spatial spelling of every merging block in the graph for `fmt` (tomesd.spatial_ops)."""
        if self.merge is None or self.drop:
            return ()
        return tuple(spatial_ops(ops, p.h * p.w, fmt) for p in self.plans if p is not None)

    @contextlib.contextmanager
    def spelled(self, ops: MergeOps, fmt: str | None) -> Iterator[UNetModel]:
        """Inside the block, the UNet's tomesd blocks are spelled for the graph of `fmt` traced with
        `ops` (tomesd.spatial_ops) and their primitives spelled `ops`; the eager patch (one-hot,
        ARITHMETIC: what validation compares against) is back after it."""
        if self.spelling(ops, fmt) == self.spelling(ARITHMETIC, None):
            with using_ops(self, ops):
                yield self
            return
        apply_tomesd(self.unet, self.merge, self.example_inputs(), drop=False, ops=ops, fmt=fmt)
        try:
            yield self
        finally:
            apply_tomesd(self.unet, self.merge, self.example_inputs(), drop=False)

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor,
                encoder_hidden_states: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.unet(sample, timestep, encoder_hidden_states, return_dict=False)[0],)


def tomesd_config(config: MergeConfig | TomesdConfig) -> TomesdConfig | None:
    """The tomesd merge a UNet takes (`tomesd:` through the method registry, or a TomesdConfig; for
    the oracle `drop:tomesd:...`, its tomesd config), or None for `none`; other methods (ToMe, ...)
    are refused."""
    if isinstance(config, TomesdConfig):
        return config
    if config.method == METHOD:
        return config.params
    if config.drops and config.params.like == METHOD:
        return config.params.params
    if config.enabled:
        raise SpecError(f"{config.describe()} applies to transformer encoders; Stable Diffusion UNets take "
                        f"{TOMESD_HELP}")
    return None


def latent_size(sample_size: int, size: int | str | tuple[int, int] | None) -> int:
    """Latent side for an image side `size` in pixels (a multiple of 8; a (height, width) pair must be
    square); the config's sample_size if None."""
    if size is None:
        return int(sample_size)
    if isinstance(size, tuple):
        if size[0] != size[1]:
            raise SpecError(f"--size {size[0]}x{size[1]}: Stable Diffusion UNets are exported square; give one "
                            "number or NxN")
        size = size[0]
    size = int(size)
    if size <= 0 or size % VAE_SCALE or size > MAX_SIZE:
        raise SpecError(f"--size {size} must be a multiple of {VAE_SCALE} from {VAE_SCALE} to {MAX_SIZE} "
                        "(image pixels; latent = size / 8)")
    return size // VAE_SCALE


def unet_bundle(name: str, unet: nn.Module, config: MergeConfig | TomesdConfig, size: int | str | None = None,
                cfg: bool = False, files: dict[str, str] | None = None) -> ModelBundle:
    """A diffusers UNet patched per `config` at a fixed latent size, as a one-part bundle."""
    merge = tomesd_config(config)
    drop = isinstance(config, MergeConfig) and config.drops
    latent = latent_size(unet.config.sample_size, size)
    wrapper = UNetModel(unet, latent, 2 if cfg else 1, merge, drop)
    plans = wrapper.plans
    manifest = {
        "pipeline": {"kind": "stable-diffusion-unet", "latent": [latent, latent], "batch": 2 if cfg else 1,
                     "image_size": latent * VAE_SCALE, "layout": "diffusers"},
        "merge": {**merge.to_json(), "method": "drop", "like": METHOD} if drop else merge.to_json() if merge
        else {"method": "none"},
        "tomesd_blocks": [p.to_json() if p else None for p in plans],
    }
    generated = files if files is not None else {"unet/config.json": unet_config_json(unet)}
    return ModelBundle(name, {PART: wrapper}, manifest=manifest, generated_files=generated)


def diffusers_class(name: str) -> type:
    """A diffusers model class by name; diffusers is an optional extra (`pip install 'tomobile[sd]'`):
    its huggingface-hub pin excludes transformers 4.57, the line optimum-onnx needs."""
    try:
        import diffusers  # heavy import, only for diffusers models (UNets, video transformers)
    except ImportError:
        raise InputError(f"diffusers models ({name}) need diffusers: pip install 'tomobile[sd]' "
                         "(diffusers==0.42.1)") from None
    return getattr(diffusers, name)


def unet_config_json(unet: nn.Module) -> str:
    """diffusers' config.json of the UNet (what `UNet2DConditionModel.from_config` reads back)."""
    return json.dumps(dict(unet.config, _class_name=type(unet).__name__), indent=2, sort_keys=True, default=list) + "\n"


def seeded_unet(arch: dict, seed: int = 0) -> nn.Module:
    UNet2DConditionModel = diffusers_class(UNET_CLASS)
    return seeded(lambda: UNet2DConditionModel(**arch), seed)


def sd_unet_tiny(config: MergeConfig | TomesdConfig, size: int | str | None = None, cfg: bool = False) -> ModelBundle:
    _check_args(SD_TINY, config, size)
    return unet_bundle("sd-unet-tiny", seeded_unet(SD_TINY), config, size, cfg)


def sd15_unet(config: MergeConfig | TomesdConfig, size: int | str | None = None, cfg: bool = False) -> ModelBundle:
    _check_args(SD15, config, size)
    return unet_bundle("sd15-unet", seeded_unet(SD15), config, size, cfg)


def _check_args(arch: dict, config: MergeConfig | TomesdConfig, size: int | str | None) -> None:
    """Refuse a bad spec or size before the (for sd15-unet, slow) model build."""
    tomesd_config(config)
    latent_size(arch["sample_size"], size)


def unet_folder(folder: Path) -> Path | None:
    """The diffusers UNet folder inside `folder` (itself, or its unet/), or None if neither is one."""
    for candidate in (folder, folder / "unet"):
        try:
            raw = json.loads((candidate / "config.json").read_text())
        except (OSError, ValueError):
            continue
        if isinstance(raw, dict) and raw.get("_class_name") == UNET_CLASS:
            return candidate
    return None


def load_unet_folder(folder: Path, config: MergeConfig | TomesdConfig, size: int | str | None = None,
                     cfg: bool = False, name: str | None = None) -> ModelBundle:
    """A local diffusers UNet (config.json + diffusion_pytorch_model.safetensors) or pipeline folder."""
    UNet2DConditionModel = diffusers_class(UNET_CLASS)

    found = unet_folder(folder)
    if found is None:
        raise FileNotFoundError(f"{folder} holds no diffusers {UNET_CLASS} (config.json with _class_name "
                                f"{UNET_CLASS}, here or in unet/)")
    if not any(found.glob("*.safetensors")):
        raise FileNotFoundError(f"{found} has no .safetensors weights; tomobile reads diffusers UNet weights from "
                                "safetensors only")
    _check_args(json.loads((found / "config.json").read_text()), config, size)
    unet = UNet2DConditionModel.from_pretrained(found, use_safetensors=True, low_cpu_mem_usage=False).eval()
    files = {"unet/config.json": (found / "config.json").read_text()}
    return unet_bundle(name or folder.resolve().name, unet, config, size, cfg, files=files)
