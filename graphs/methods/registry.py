"""The merge methods, in one table: `tomobile export --merge METHOD:...`.

Parsing (graphs/spec/config.py), patching (graphs/models/hf_models.py through `merged_layer`),
export, validation, the manifest and bench's drop oracle go through this table only, so a new
method is one module that builds a `Method` (method.py) and one row below. The order is the
order `--help` and `tomobile models` list them in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..spec.grammar import SpecError
from . import diffrate, drop, none, pitome, tdtm_attention, tome, tomesd
from .layers import LayerFns, TokenState
from .merge import ARITHMETIC
from .method import Method
from .ops import MergeOps
from .plan import MergePlan, PlanShape, Protected

if TYPE_CHECKING:  # annotations only: spec/config.py parses through this table
    from ..spec.config import MergeConfig

# The methods `drop:` keeps the token counts of (`drop:pitome:ratio=0.9`): every one that merges.
_MERGING = {m.name: m for m in (tome.TOME, pitome.PITOME, diffrate.DIFFRATE, tomesd.TOMESD, tdtm_attention.TDTM)}

METHODS: dict[str, Method] = {
    "none": none.NONE,
    "tome": tome.TOME,
    "drop": drop.oracle_of(_MERGING),
    "pitome": pitome.PITOME,
    "diffrate": diffrate.DIFFRATE,
    "tomesd": tomesd.TOMESD,
    "tdtm": tdtm_attention.TDTM,
}


def methods() -> dict[str, Method]:
    """Every method by name, in the order `--help` lists them."""
    return dict(METHODS)


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise SpecError(f"unknown merge method {name!r}; methods: {', '.join(METHODS)}")
    return METHODS[name]


def make_plan(config: MergeConfig, num_layers: int, tokens: int, class_token: bool, distill_token: bool = False,
              padded: bool = False, registers: int = 0) -> MergePlan:
    """The plan of `config` for a model of this shape; SpecError when it does not fit."""
    shape = PlanShape(num_layers, tokens, Protected(class_token, distill_token, registers), padded)
    return get_method(config.method).plan(config.params, shape)


def merged_layer(fns: LayerFns, state: TokenState, layer: int, plan: MergePlan,
                 ops: MergeOps = ARITHMETIC) -> TokenState:
    """Layer `layer` of a patched model: the plan's method decides what happens between attention
    and the MLP, spelled by `ops`."""
    return get_method(plan.method).layer(fns, state, layer, plan, ops)
