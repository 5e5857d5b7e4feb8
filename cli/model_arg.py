"""The MODEL argument of export and bench: a built-in name or a local Hugging Face model folder,
turned into a ModelBundle here, at the boundary."""

from __future__ import annotations

import os
from pathlib import Path

from ..graphs.config import MergeConfig, SpecError
from ..graphs.errors import InputError
from ..graphs.exportable import ModelBundle
from ..graphs.registry import ModelEntry, get_model, load_builtin_models
from ..graphs.hf_folder import load_local


def resolve_model(name: str, config: MergeConfig, options: dict[str, str] | None = None) -> ModelBundle:
    """A built-in model name or a local Hugging Face model folder -> bundle, patched per `config`;
    `options` (the video model's TDTM modes) only for a built-in model that takes them."""
    models = load_builtin_models()
    if name in models:
        _refuse_options(name, models, options or {})
        return get_model(name).builder(config, **(options or {}))
    path = Path(name)
    if path.exists():
        _refuse_options(name, models, options or {})
        return load_local(path, config)
    if os.sep in name or name.startswith("."):
        raise FileNotFoundError(f"no folder {name}; MODEL is a built-in name (see `tomobile models`) or a local "
                                "Hugging Face model folder")
    return get_model(name).builder(config)  # raises UnknownModelError listing the built-in names


def _refuse_options(name: str, models: dict[str, ModelEntry], options: dict[str, str]) -> None:
    """Model options (the TDTM modes) that `name` does not take are a one-line error."""
    unknown = [k for k in options if k not in (models[name].options if name in models else ())]
    if unknown:
        takers = ", ".join(n for n, e in sorted(models.items()) if set(unknown) <= set(e.options))
        flags = " and ".join("--" + k.replace("_", "-") for k in unknown)
        raise InputError(f"{flags} {'apply' if len(unknown) > 1 else 'applies'} to video models only ({takers}), "
                         f"not to {name}")


def source_folder(name: str) -> Path | None:
    """The local model folder that MODEL names (an export must not replace it), or None."""
    return None if name in load_builtin_models() or not Path(name).exists() else Path(name)


def check_trace_source(config: MergeConfig, bundle: ModelBundle) -> None:
    """trace_source=1 must reach an output: refuse it where no exported part outputs sources."""
    outputs = [n for part in bundle.parts.values() for n in part.output_names]
    if config.trace_source and not any("source" in n for n in outputs):
        raise SpecError(f"trace_source=1 has no effect on {bundle.name}: its exported outputs "
                        f"({', '.join(outputs)}) do not include token sources; drop trace_source")
