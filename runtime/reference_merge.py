"""The original-style ToMe merge (argsort + gather + scatter_reduce), for eager speed comparisons.

Written here in the style of facebookresearch/ToMe's `bipartite_soft_matching` and
`merge_wavg`: rank A tokens by their best similarity with argsort, gather the r best, and
scatter_reduce them into their B partners. It is data-dependent in the ways export cannot take
(argsort has no ExecuTorch kernel, scatter_reduce(mean) exports to ONNX as a plain scatter and
runs wrong, Core ML has no converter for it: export/opcheck.py) and serves only as the eager baseline that tomobile's static graph must not lose
to. `reference_merge()` swaps it into the layer code for the length of a `with` block.
"""

from __future__ import annotations

import contextlib
import math
import statistics
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from ..graphs.methods import tome
from ..graphs.methods.merge import protected_count, protected_first, protected_split
from .bench import round_robin

MergeFn = Callable[[torch.Tensor, str], torch.Tensor]


def reference_matching(metric: torch.Tensor, r: int, class_token: bool = False,
                       distill_token: bool = False, registers: int = 0) -> MergeFn:
    """metric (B, T, C) -> merge(x (B, T, C'), mode) -> (B, T - r, C'), ToMe's output order.
    Register tokens (which ToMe has not) are protected by its distillation-token rule generalized:
    the first `protected` tokens alternate A0, B0, A1, ..; their rows and columns never match and
    they come first in the output (graphs/methods/merge.py, docs/methods.md)."""
    protected = protected_count(class_token, distill_token, registers)
    pa, pb = protected_split(protected)  # protected A rows, B columns
    r = min(r, (metric.shape[1] - protected) // 2)
    metric = metric / metric.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    a, b = metric[..., ::2, :], metric[..., 1::2, :]  # (B, Ta, C), (B, Tb, C)
    scores = a @ b.transpose(-1, -2)  # (B, Ta, Tb)
    scores[..., :pa, :] = -math.inf
    scores[..., :, :pb] = -math.inf
    node_max, node_idx = scores.max(dim=-1)  # (B, Ta)
    edge_idx = node_max.argsort(dim=-1, descending=True, stable=True)[..., None]  # (B, Ta, 1)
    unm_idx, src_idx = edge_idx[..., r:, :], edge_idx[..., :r, :]  # kept, merged A tokens
    dst_idx = node_idx[..., None].gather(dim=-2, index=src_idx)  # (B, r, 1)
    if class_token:
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


@contextlib.contextmanager
def reference_merge() -> Iterator[None]:
    """Within the block, merged layers use the reference merge instead of the static graph.

    Covers the ViT-style path (no source tracking, no padding); the static functions are back
    afterwards whatever happens.
    """
    saved = tome.slot_merge, tome.merge_wavg

    def matching(metric, r, class_token=False, distill_token=False, valid=None, registers=0):
        if valid is not None:
            raise NotImplementedError("the reference merge has no padding mask")
        return reference_matching(metric, r, class_token, distill_token, registers)

    def wavg(merge, x, size, unit_size=False):
        return reference_merge_wavg(merge, x, size)

    tome.slot_merge, tome.merge_wavg = matching, wavg
    try:
        yield
    finally:
        tome.slot_merge, tome.merge_wavg = saved


# Original-style eager merges by method name: a context manager that swaps one in for the static ops.
REFERENCES: dict[str, Callable[[], contextlib.AbstractContextManager]] = {"tome": reference_merge}


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
        with REFERENCES[method]():
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
