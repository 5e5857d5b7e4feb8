"""What a merge method is: a name, a SPEC parser, a planner and a layer step.

    params = method.parse(spec, body)               # a frozen dataclass: describe() -> body, to_json()
    plan = method.plan(params, shape)               # MergePlan: tokens per layer, method data per layer
    state = method.layer(fns, state, i, plan, ops)  # one transformer layer with the method's merge,
                                                    # spelled by `ops` (a MergeOps, ops.py)

Each method module (none.py, tome.py, drop.py, pitome.py, diffrate.py, tomesd.py, tdtm_attention.py) builds one
`Method`; registry.py lists them in one table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from .layers import LayerFns, TokenState
from .ops import MergeOps
from .plan import MergePlan, PlanShape


class MethodParams(Protocol):
    """A method's parsed SPEC: frozen, comparable, and printable back to the SPEC body."""

    def describe(self) -> str: ...

    def to_json(self) -> dict[str, Any]: ...


LayerStep = Callable[[LayerFns, TokenState, int, MergePlan, MergeOps], TokenState]


@dataclass(frozen=True)
class Method:
    name: str
    summary: str  # one line: what it is and where it comes from (`tomobile models`)
    grammar: str  # the SPEC forms it takes (`--help`)
    parse: Callable[[str, str], MethodParams]  # (whole spec, body after 'name:') -> params
    plan: Callable[[Any, PlanShape], MergePlan]  # (params, shape) -> plan
    layer: LayerStep
    oracle: bool = True  # bench times a `drop:` twin at the same token counts
    bare: bool = False  # the SPEC may be the name alone (`tdtm`)
