"""The MODEL argument of export and bench: a built-in name or a local Hugging Face model folder,
turned into a ModelBundle here, at the boundary."""

from __future__ import annotations

import os
from pathlib import Path

from ..graphs.errors import InputError
from ..graphs.methods.tomesd import METHOD as TOMESD
from ..graphs.methods.tomesd import TomesdConfig, unused_options
from ..graphs.models.exportable import ModelBundle
from ..graphs.models.hf_folder import load_local
from ..graphs.models.registry import ModelEntry, builtin_models, get_model
from ..graphs.models.sd_unet import SD_OPTIONS, load_unet_folder, unet_folder
from ..graphs.models.video_folder import load_video_folder, video_source
from ..graphs.models.video_transformers import VIDEO_OPTIONS
from ..graphs.models.wan_pipeline import PIPELINE_OPTIONS, load_wan_pipeline, scheduler_config, wan_pipeline_folder
from ..graphs.spec.config import MergeConfig
from ..graphs.spec.grammar import SpecError
from ..runtime.flow_schedule import flow_schedule


def resolve_model(name: str, config: MergeConfig, options: dict | None = None) -> ModelBundle:
    """A built-in model name, a local Hugging Face model folder, a local diffusers UNet / pipeline
    folder or a diffusers video transformer / pipeline folder (Wan, LTX-Video) -> bundle, patched per
    `config`; `options` (the video models' TDTM modes, the UNets' size and cfg, the video
    transformers' size and frames) only for a model that takes them."""
    models = builtin_models()
    path = Path(name)
    if path.exists() and wan_pipeline_folder(path):
        _refuse_folder_options(path, options or {}, PIPELINE_OPTIONS, "diffusers WanPipeline")
        flow_schedule(scheduler_config(path), 1)  # a scheduler the sampler lacks is refused before any weight is read
        return load_wan_pipeline(path, config, **(options or {}))
    if "text_length" in (options or {}):
        raise InputError(f"--text-length applies to a diffusers WanPipeline folder, not to {name}")
    if name in models:
        _refuse_options(name, models, options or {})
        _refuse_tomesd(name, config, models[name].options)
        return get_model(name).builder(config, **(options or {}))
    if path.exists() and unet_folder(path):
        _refuse_folder_options(path, options or {}, SD_OPTIONS, "diffusers UNet")
        return load_unet_folder(path, config, **(options or {}))
    if path.exists() and video_source(path):
        _refuse_folder_options(path, options or {}, VIDEO_OPTIONS, "diffusers video transformer")
        return load_video_folder(path, config, **(options or {}))
    if path.exists():
        _refuse_options(name, models, options or {})
        _refuse_tomesd(name, config, ())
        return load_local(path, config)
    if os.sep in name or name.startswith("."):
        raise FileNotFoundError(f"no folder {name}; MODEL is a built-in name (see `tomobile models`) or a local "
                                "Hugging Face model folder")
    return get_model(name).builder(config)  # raises UnknownModelError listing the built-in names


def _refuse_options(name: str, models: dict[str, ModelEntry], options: dict) -> None:
    """Model options (the TDTM modes, --size/--cfg/--frames of diffusers models) that `name` does not
    take are a one-line error naming the models that take them."""
    unknown = [k for k in options if k not in (models[name].options if name in models else ())]
    if unknown:
        takers = ", ".join(n for n, e in sorted(models.items()) if set(unknown) <= set(e.options))
        flags = " and ".join("--" + k.replace("_", "-") for k in unknown)
        verb = "apply" if len(unknown) > 1 else "applies"
        if set(unknown) <= {*SD_OPTIONS, *VIDEO_OPTIONS} - {"tdtm_odd"}:
            raise InputError(f"{flags} {verb} to diffusers models ({takers}, local diffusers folders), not to {name}")
        raise InputError(f"{flags} {verb} only to {takers} (the models with TDTM modes), not to {name}")


def _refuse_folder_options(path: Path, options: dict, allowed: tuple[str, ...], kind: str) -> None:
    extra = [k for k in options if k not in allowed]
    if extra:
        raise InputError(f"--{extra[0].replace('_', '-')} does not apply to the {kind} in {path}; it takes "
                         f"{', '.join('--' + k.replace('_', '-') for k in allowed)}")


def _refuse_tomesd(name: str, config: MergeConfig, options: tuple[str, ...]) -> None:
    """tomesd: merges Stable Diffusion UNets only (the models that take --cfg); a video transformer
    (the models that take --frames) refuses it itself, naming the merges it takes."""
    if config.method == TOMESD and "cfg" not in options and "frames" not in options:
        raise SpecError(f"{config.describe()} applies to Stable Diffusion UNets (sd-unet-tiny, sd15-unet, a local "
                        f"diffusers folder), not to {name}; transformer encoders take the other methods (`tomobile models`)")


def diffusers_options(size: int | tuple[int, int] | None, cfg: bool, frames: int | None = None,
                      text_length: int | None = None) -> dict:
    """--size / --cfg / --frames / --text-length as given (omitted ones left out, so other models refuse
    only what was asked)."""
    given = (("size", size), ("cfg", cfg or None), ("frames", frames), ("text_length", text_length))
    return {k: v for k, v in given if v is not None}


def source_folder(name: str) -> Path | None:
    """The local model folder that MODEL names (an export must not replace it), or None."""
    return None if name in builtin_models() or not Path(name).exists() else Path(name)


def check_trace_source(config: MergeConfig, bundle: ModelBundle) -> None:
    """trace_source=1 must reach an output: refuse it where no exported part outputs sources."""
    outputs = [n for part in bundle.parts.values() for n in part.output_names]
    if getattr(config, "trace_source", False) and not any("source" in n for n in outputs):
        raise SpecError(f"trace_source=1 has no effect on {bundle.name}: its exported outputs "
                        f"({', '.join(outputs)}) do not include token sources; drop trace_source")


def unused_merge_options(config: MergeConfig, batch: int) -> str | None:
    """What the merge spec asks that does nothing at this batch, for one `no effect` note line, or
    None: tomesd's seed without use_rand, use_rand at an odd batch (also under `drop:tomesd:`)."""
    params = config.params.params if config.drops else config.params
    unused = unused_options(params, batch) if isinstance(params, TomesdConfig) else []
    return f"no effect in this run: {'; '.join(unused)}" if unused else None
