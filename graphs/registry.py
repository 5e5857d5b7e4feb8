"""Built-in model names -> builders. `tomobile models` lists them.

A builder takes a MergeConfig and returns a ModelBundle (graphs/exportable.py); a builder that
takes model-specific keyword options (the video model's TDTM modes) names them in `options`.
Modules that define builders register them with @register_model; `load_builtin_models()` imports them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from .errors import TomobileError
from .exportable import ModelBundle

Builder = Callable[..., ModelBundle]  # (MergeConfig, **options) -> ModelBundle


@dataclass(frozen=True)
class ModelEntry:
    name: str
    description: str
    builder: Builder
    options: tuple[str, ...] = ()  # keyword options the builder takes besides the MergeConfig


class UnknownModelError(TomobileError, KeyError):
    """A model name that is neither built in nor a local folder; the message lists the names."""

    def __str__(self) -> str:  # KeyError quotes its message; print it plainly
        return str(self.args[0])


_MODELS: dict[str, ModelEntry] = {}
# Modules whose import registers built-in models.
_BUILTIN_MODULES = ("tomobile.graphs.zoo", "tomobile.graphs.video_zoo", "tomobile.graphs.video_random",
                    "tomobile.graphs.sd_unet", "tomobile.graphs.wan", "tomobile.graphs.ltx")


def register_model(name: str, description: str, options: tuple[str, ...] = ()) -> Callable[[Builder], Builder]:
    def wrap(builder: Builder) -> Builder:
        _MODELS[name] = ModelEntry(name, description, builder, options)
        return builder

    return wrap


def load_builtin_models() -> dict[str, ModelEntry]:
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)
    return dict(_MODELS)


def get_model(name: str) -> ModelEntry:
    models = load_builtin_models()
    if name not in models:
        raise UnknownModelError(f"unknown model {name!r}; built-in models: {', '.join(sorted(models))}, or a local Hugging Face model folder")
    return models[name]
