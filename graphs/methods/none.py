"""`none`: the unmerged model as a method (every layer keeps its tokens), so that code holding a
plan never asks whether there is one."""

from __future__ import annotations

from .layers import plain_layer
from .method import Method
from .plan import MergePlan, PlanShape, counts_plan


def _parse(spec: str, body: str) -> None:
    return None  # spec/config.py parse_spec handles 'none' itself


def _plan(params: None, shape: PlanShape) -> MergePlan:
    return counts_plan("none", [0] * shape.num_layers, shape, prop_attn=False)


NONE = Method(name="none", summary="no merging", grammar="none", parse=_parse, plan=_plan, layer=plain_layer,
              oracle=False)
