"""The original-style ToMe merge (argsort + gather + scatter_reduce), for eager speed comparisons.

Written here in the style of facebookresearch/ToMe's `bipartite_soft_matching` and
`merge_wavg`: rank A tokens by their best similarity with argsort, gather the r best, and
scatter_reduce them into their B partners. It is data-dependent in the ways export cannot take
(argsort has no ExecuTorch kernel, scatter_reduce(mean) exports to ONNX as a plain scatter and
runs wrong, Core ML has no converter for it: export/opcheck.py) and serves only as the eager
baseline that tomobile's static graph must not lose to. It is a merge spelling like the others
(`REFERENCE`, graphs/methods/ops.py): a patched model runs it where it is set (`reference_merge`).
"""

from __future__ import annotations

import contextlib
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch

from ..graphs.methods.merge import ArithmeticOps, protected_first
from ..graphs.methods.ops import MergeOps, using_ops
from ..graphs.methods.plan import Protected
from .bench import round_robin

MergeFn = Callable[[torch.Tensor, str], torch.Tensor]


def reference_matching(metric: torch.Tensor, r: int, protected: Protected) -> MergeFn:
    """metric (B, T, C) -> merge(x (B, T, C'), mode) -> (B, T - r, C'), ToMe's output order.
    Register tokens (which ToMe has not) are protected by its distillation-token rule generalized:
    the first `protected.count` tokens alternate A0, B0, A1, ..; their rows and columns never match
    and they come first in the output (graphs/methods/merge.py, docs/methods.md)."""
    pa, pb = protected.split  # protected A rows, B columns
    r = min(r, (metric.shape[1] - protected.count) // 2)
    metric = metric / metric.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    a, b = metric[..., ::2, :], metric[..., 1::2, :]  # (B, Ta, C), (B, Tb, C)
    scores = a @ b.transpose(-1, -2)  # (B, Ta, Tb)
    scores[..., :pa, :] = -math.inf
    scores[..., :, :pb] = -math.inf
    node_max, node_idx = scores.max(dim=-1)  # (B, Ta)
    edge_idx = node_max.argsort(dim=-1, descending=True, stable=True)[..., None]  # (B, Ta, 1)
    unm_idx, src_idx = edge_idx[..., r:, :], edge_idx[..., :r, :]  # kept, merged A tokens
    dst_idx = node_idx[..., None].gather(dim=-2, index=src_idx)  # (B, r, 1)
    if protected.class_token:
        unm_idx = unm_idx.sort(dim=1)[0]  # keep the class token first, kept A tokens in order

    def merge(x: torch.Tensor, mode: str = "mean") -> torch.Tensor:
        src, dst = x[..., ::2, :], x[..., 1::2, :]  # (B, Ta, C), (B, Tb, C)
        n, t1, c = src.shape
        unm = src.gather(dim=-2, index=unm_idx.expand(n, t1 - r, c))  # (B, Ta - r, C)
        src = src.gather(dim=-2, index=src_idx.expand(n, r, c))  # (B, r, C)
        dst = dst.scatter_reduce(-2, dst_idx.expand(n, r, c), src, reduce=mode)  # (B, Tb, C)
        return protected_first(unm, dst, protected)  # (B, T - r, C)

    return merge


def reference_merge_wavg(merge: MergeFn, x: torch.Tensor, size: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """ToMe's size-weighted average: x (B, T, C), size (B, T, 1) -> (B, T', C), (B, T', 1)."""
    x = merge(x * size, "sum")
    size = merge(size, "sum")
    return x / size, size


@dataclass(frozen=True)
class ReferenceMatching:
    """The reference's matching step as `merge_wavg` / `merge_sum` take it (a SlotMerge)."""

    merge: MergeFn

    def sum(self, x: torch.Tensor) -> torch.Tensor:
        return self.merge(x, "sum")

    def wavg(self, x: torch.Tensor, size: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return reference_merge_wavg(self.merge, x, size)


@dataclass(frozen=True)
class ReferenceOps(ArithmeticOps):
    """ARITHMETIC's primitives with ToMe's original matching step: eager only (it does not export).
    Covers the ViT-style path; a padding mask is refused."""

    name: ClassVar[str] = "reference"

    def match(self, metric: torch.Tensor, r: int, protected: Protected,
              valid: torch.Tensor | None = None) -> ReferenceMatching:
        if valid is not None:
            raise NotImplementedError("the reference merge has no padding mask")
        return ReferenceMatching(reference_matching(metric, r, protected))


REFERENCE = ReferenceOps()


def reference_merge(model: torch.nn.Module) -> contextlib.AbstractContextManager:
    """Within the block, `model`'s merged layers use the reference merge instead of the static
    graph; its own spelling is back afterwards whatever happens."""
    return using_ops(model, REFERENCE)


# Original-style eager merges by method name: the spelling that swaps one in for the static ops.
REFERENCES: dict[str, MergeOps] = {"tome": REFERENCE}


@dataclass(frozen=True)
class EagerComparison:
    label: str
    static_ms: float
    reference_ms: float

    @property
    def ratio(self) -> float:
        """reference time / static time: >= 1 means the static graph is not slower."""
        return self.reference_ms / self.static_ms


def compare_eager(label: str, model: torch.nn.Module, inputs: tuple[torch.Tensor, ...], runs: int,
                  threads: int, progress: bool = True, method: str = "tome") -> EagerComparison:
    """Median eager latency of `model` with the static merge and with `method`'s reference, interleaved."""
    def static() -> None:
        model(*inputs)

    def reference() -> None:
        with using_ops(model, REFERENCES[method]):
            model(*inputs)

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            times = round_robin({"static": static, "reference": reference}, runs, progress=progress,
                                desc=f"eager {label}")
    finally:
        torch.set_num_threads(old)
    return EagerComparison(label, statistics.median(times["static"]) * 1e3,
                           statistics.median(times["reference"]) * 1e3)
