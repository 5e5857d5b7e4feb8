"""Built-in model names -> builders. `tomobile models` lists them.

A builder takes a MergeConfig and returns a ModelBundle (graphs/exportable.py). Modules that
define builders register them with @register_model; `load_builtin_models()` imports them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from .config import MergeConfig
from .exportable import ModelBundle

Builder = Callable[[MergeConfig], ModelBundle]


@dataclass(frozen=True)
class ModelEntry:
    name: str
    description: str
    builder: Builder


_MODELS: dict[str, ModelEntry] = {}
# Modules whose import registers built-in models.
_BUILTIN_MODULES = ("tomobile.graphs.zoo", "tomobile.graphs.video_zoo", "tomobile.graphs.video_random")


def register_model(name: str, description: str) -> Callable[[Builder], Builder]:
    def wrap(builder: Builder) -> Builder:
        _MODELS[name] = ModelEntry(name, description, builder)
        return builder

    return wrap


def load_builtin_models() -> dict[str, ModelEntry]:
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)
    return dict(_MODELS)


def get_model(name: str) -> ModelEntry:
    models = load_builtin_models()
    if name not in models:
        raise KeyError(f"unknown model {name!r}; built-in models: {', '.join(sorted(models))}, or a local Hugging Face model folder")
    return models[name]
