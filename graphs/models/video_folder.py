"""Local diffusers folders of a video transformer: a transformer folder (config.json whose
`_class_name` is WanTransformer3DModel or LTXVideoTransformer3DModel, with
diffusion_pytorch_model.safetensors, or its shards and index) or a pipeline folder (model_index.json
of WanPipeline or LTXPipeline) whose transformer/ is taken, with the VAE's scale factors from its
vae/config.json (the family's defaults for a transformer-only folder).

A folder tomobile cannot export is refused in one line naming what it takes: a pipeline without
transformer/, a pipeline or model class of another kind, a transformer without safetensors weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from safetensors.torch import load_file
from torch import nn

from ..errors import InputError
from ..spec.config import MergeConfig
from .exportable import ModelBundle
from .hf_folder import FolderError, check_safetensors
from .ltx import LTX
from .video_transformers import WEIGHTS, VaeScale, VideoFamily, clip_shape, read_json, tdtm_rule, video_bundle
from .wan import WAN

FAMILIES: tuple[VideoFamily, ...] = (WAN, LTX)
OTHER_DIFFUSERS = ("UNet2DConditionModel",)  # diffusers classes other modules export (sd_unet.py)
OTHER_PIPELINES = ("unet",)  # a pipeline with this part is another module's (Stable Diffusion's UNet)


def _supported() -> str:
    return ", ".join(f"{f.transformer_class} / {' / '.join(f.pipeline_classes)}" for f in FAMILIES)


@dataclass(frozen=True)
class VideoSource:
    """A video transformer found in a local folder."""

    family: VideoFamily
    transformer_dir: Path
    vae: VaeScale


def video_source(folder: Path) -> VideoSource | None:
    """The video transformer `folder` holds, None when it is no diffusers folder at all (another
    kind of model folder); a diffusers folder tomobile cannot export is a one-line InputError."""
    index = read_json(folder / "model_index.json")
    if index is not None and not any((folder / part).is_dir() for part in OTHER_PIPELINES):
        kind = index.get("_class_name")
        family = next((f for f in FAMILIES if kind in f.pipeline_classes), None)
        if family is None:
            raise InputError(f"{folder} is a diffusers {kind} pipeline; tomobile exports the transformer of "
                             f"{', '.join(p for f in FAMILIES for p in f.pipeline_classes)} and Stable Diffusion UNets")
        found = folder / "transformer"
        if (read_json(found / "config.json") or {}).get("_class_name") is None:
            raise InputError(f"{folder} is a {kind} folder without a transformer (transformer/config.json and "
                             "weights); nothing to export")
        vae = read_json(folder / "vae" / "config.json")
        if _transformer(found).family is not family:
            raise InputError(f"{folder} is a {kind} folder whose transformer/ is no {family.transformer_class}")
        return VideoSource(family, found, family.vae_scale(vae) if vae else family.vae)
    config = read_json(folder / "config.json")
    if config is None or "_class_name" not in config or config["_class_name"] in OTHER_DIFFUSERS:
        return None
    return _transformer(folder)


def _transformer(folder: Path) -> VideoSource:
    """A transformer folder's family, by its config's _class_name."""
    kind = (read_json(folder / "config.json") or {}).get("_class_name")
    family = next((f for f in FAMILIES if f.transformer_class == kind), None)
    if family is None:
        raise InputError(f"{folder} holds a diffusers {kind}; tomobile exports {_supported()} "
                         "(and UNet2DConditionModel)")
    return VideoSource(family, folder, family.vae)


def load_video_folder(folder: Path, config: MergeConfig, size: str | None = None, frames: int | None = None,
                      tdtm_odd: str | None = None, name: str | None = None,
                      text_tokens: int | None = None) -> ModelBundle:
    """The transformer in a local diffusers folder at `size` x `frames` (required: a checkpoint has no
    default clip), its weights from safetensors, checked before any weight is read; `text_tokens`:
    the text length (default: the pipeline's, 512 for Wan)."""
    source = video_source(folder)
    if source is None:
        raise InputError(f"{folder} holds no diffusers video transformer; tomobile exports {_supported()}")
    family = source.family
    if size is None or frames is None:
        raise InputError(f"a {family.transformer_class} folder needs --size HxW and --frames N (video pixels and "
                         f"frames, as the pipeline's height, width, num_frames), e.g. --size "
                         f"{family.default_size[0]}x{family.default_size[1]} --frames {family.default_frames}")
    raw = json.loads((source.transformer_dir / "config.json").read_text())
    shape = clip_shape(family, source.vae, family.patch(raw), size, frames)
    family.check(raw, shape)
    tdtm_rule(config, shape, tdtm_odd)
    transformer = _load_weights(family, source.transformer_dir, raw)
    return video_bundle(name or folder.resolve().name, family, transformer, config, shape, tdtm_odd, text_tokens,
                        config_json=(source.transformer_dir / "config.json").read_text())


def _load_weights(family: VideoFamily, folder: Path, raw: dict) -> nn.Module:
    """The transformer built from its config with the checkpoint's weights (fp32), every key present.
    (diffusers' from_pretrained needs accelerate for these classes: they keep modules in fp32.)"""
    index = read_json(folder / f"{WEIGHTS}.index.json")
    files = sorted({folder / f for f in index.get("weight_map", {}).values()}) if index else [folder / WEIGHTS]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise FolderError(f"{folder} has no {', '.join(missing)}; tomobile reads diffusers transformer weights from "
                          "safetensors only")
    for f in files:
        check_safetensors(f)
    transformer = family.load_class().from_config({k: v for k, v in raw.items() if not k.startswith("_")})
    state = {}
    for f in files:
        state.update(load_file(str(f)))
    try:
        result = transformer.load_state_dict({k: v.float() for k, v in state.items()}, strict=False, assign=True)
    except RuntimeError as err:  # a tensor of another shape than the config's
        raise FolderError(f"{folder}: the weights do not fit its config.json: {str(err).splitlines()[-1].strip()}")\
            from None
    if result.missing_keys or result.unexpected_keys:
        raise FolderError(f"{folder}: the weights do not fit the config (missing {result.missing_keys[:3]}, "
                         f"unexpected {result.unexpected_keys[:3]})")
    return transformer.eval()
