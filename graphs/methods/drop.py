"""`drop:` the token-drop oracle, a baseline for measuring, not a method.

Any method's plan and shapes, with each layer keeping its first T' tokens and discarding the
rest, so the graph does no merge work at all: the speed a merge at those token counts could at
best reach. SPEC: `drop:r=...` (the forms of `tome:`) or `drop:METHOD:...` (the token counts of
any other method's SPEC, e.g. `drop:pitome:ratio=0.9`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from ..spec.grammar import SpecError
from .layers import LayerFns, TokenState
from .merge import attention_bias
from .method import Method, MethodParams
from .ops import MergeOps
from .plan import MergePlan, PlanShape
from .tome import parse as parse_tome

GRAMMAR = "drop:r=... | drop:METHOD:... (keeps the first T' tokens: a speed baseline for measuring, not a method)"


@dataclass(frozen=True)
class DropParams:
    """The method whose token counts the oracle keeps, and its params."""

    like: str
    params: MethodParams

    @property
    def trace_source(self) -> bool:
        """The twin's trace_source=1: the oracle tracks sources as its method would (it slices them),
        so the CLI refuses it where no output carries sources, as it does for the method."""
        return bool(getattr(self.params, "trace_source", False))

    def describe(self) -> str:
        if self.like == "tome":
            return self.params.describe()
        body = self.params.describe()
        return f"{self.like}:{body}" if body else self.like  # a bare method: `drop:tdtm`

    def to_json(self) -> dict:
        return {**self.params.to_json(), "like": self.like}


def layer(fns: LayerFns, state: TokenState, i: int, plan: MergePlan, ops: MergeOps) -> TokenState:
    """Attention, keep the first T' = T - r tokens, then the MLP.

    Same token counts as the method's layer and no merge work: no metric, no matching, no
    proportional attention (nothing merges, so every size stays 1 and log(size) would add 0).
    """
    r = plan.r[i]
    x, _, _ = fns.attend(state.x, attention_bias(None, state.valid))
    kept = x.shape[1] - r
    source = None if state.source is None else state.source[:, :kept]  # (B, T', T0)
    valid = None if state.valid is None else state.valid[:, :kept]  # (B, T')
    x = x[:, :kept]  # (B, T', C)
    return TokenState(fns.feed_forward(x), state.size[:, :kept], source, valid)


def oracle_of(merging: Mapping[str, Method]) -> Method:
    """The `drop:` method over the methods whose token counts it may keep (graphs/methods/registry.py
    hands it the table, so this module needs no registry)."""

    def parse(spec: str, body: str) -> DropParams:
        if body.strip().startswith("r="):
            return DropParams("tome", parse_tome(spec, body))
        like, _, inner = body.strip().partition(":")
        if body.strip() in ("", "none") or like == "drop":
            raise SpecError(f"drop: takes r=... or another method's SPEC (drop:pitome:ratio=0.9), not {body!r}")
        if like not in merging or not (inner.strip() or merging[like].bare):
            raise SpecError(f"unknown merge spec {body!r}", list_forms=True)
        return DropParams(like, merging[like].parse(body, inner))

    def plan(params: DropParams, shape: PlanShape) -> MergePlan:
        return replace(merging[params.like].plan(params.params, shape), method="drop")

    return Method(name="drop", summary="token-drop oracle: keeps the first T' tokens at another method's counts (a "
                                       "speed baseline, not a method)",
                  grammar=GRAMMAR, parse=parse, plan=plan, layer=layer, oracle=False)
