"""Merge methods as registered units, as formats are: `tomobile export --merge METHOD:...`.

A method is a name, a SPEC parser, a plan (token counts per layer, fixed when a model is
patched) and a layer step holding its static ops (each in a module of its own under graphs/:
tome.py, drop.py, pitome.py, diffrate.py). Parsing (config.py), patching (hf_models.py via
layers.merged_layer), export, validation, the manifest and bench's drop oracle go through this
table only, so a new method is one module that calls `register_method`.

    params = method.parse(spec, body)          # a frozen dataclass: describe() -> body, to_json()
    plan = method.plan(params, shape)          # MergePlan: tokens per layer, method data per layer
    state = method.layer(fns, state, i, plan)  # one transformer layer with the method's merge
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .spec import SpecError

if TYPE_CHECKING:
    from .layers import LayerFns, TokenState
    from .plan import MergePlan, PlanShape


class MethodParams(Protocol):
    """A method's parsed SPEC: frozen, comparable, and printable back to the SPEC body."""

    def describe(self) -> str: ...

    def to_json(self) -> dict[str, Any]: ...


LayerStep = Callable[["LayerFns", "TokenState", int, "MergePlan"], "TokenState"]


@dataclass(frozen=True)
class Method:
    name: str
    summary: str  # one line: what it is and where it comes from (`tomobile models`)
    grammar: str  # the SPEC forms it takes (`--help`)
    parse: Callable[[str, str], MethodParams]  # (whole spec, body after 'name:') -> params
    plan: Callable[[MethodParams, PlanShape], MergePlan]
    layer: LayerStep
    oracle: bool = True  # bench times a `drop:` twin at the same token counts
    bare: bool = False  # the SPEC may be the name alone (`tdtm`)


_METHODS: dict[str, Method] = {}
# Modules whose import registers the built-in methods, in the order `--help` lists them.
_BUILTIN_MODULES = ("tomobile.graphs.none", "tomobile.graphs.tome", "tomobile.graphs.drop",
                    "tomobile.graphs.pitome", "tomobile.graphs.diffrate", "tomobile.graphs.tomesd",
                    "tomobile.graphs.video_tdtm")


def register_method(method: Method) -> Method:
    _METHODS[method.name] = method
    return method


def methods() -> dict[str, Method]:
    """Every registered method by name, the built-in ones first."""
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)
    rank = {m: i for i, m in enumerate(_BUILTIN_MODULES)}
    ordered = sorted(_METHODS.values(), key=lambda m: rank.get(m.parse.__module__, len(rank)))
    return {m.name: m for m in ordered}


def get_method(name: str) -> Method:
    table = methods()
    if name not in table:
        raise SpecError(f"unknown merge method {name!r}; methods: {', '.join(table)}")
    return table[name]


def spec_help() -> str:
    return " | ".join(m.grammar for m in methods().values())


def parse_spec(spec: str) -> tuple[str, MethodParams | None]:
    """'tome:r=16' -> ('tome', TomeParams(...)); 'none' or '' -> ('none', None)."""
    text = spec.strip()
    if text in ("", "none"):
        return "none", None
    name, _, body = text.partition(":")
    table = methods()
    if name not in table or name == "none" or not (body.strip() or table[name].bare):
        raise SpecError(f"unknown merge spec {spec!r}; allowed: {spec_help()}")
    try:
        return name, table[name].parse(spec, body)
    except SpecError as err:
        if err.list_forms:
            raise SpecError(f"{err}; allowed: {spec_help()}") from None
        raise


def describe_spec(name: str, params: MethodParams | None) -> str:
    if params is None:
        return "none"
    body = params.describe()
    return f"{name}:{body}" if body else name
