"""How a merge is spelled, as a value: the ops object every static merge takes as an argument.

The merges (merge.py, pitome.py, diffrate.py, spatial_merge.py) are written once over a few
primitive ops; the `MergeOps` object handed to them spells each primitive. Two spellings give the
same token assignment (tested on exact ties) and differ in the ops they leave in a graph:

- ARITHMETIC (merge.py): comparisons as clamp/ceil arithmetic, sums, maxima and selections as
  matmuls with constant tables: every op XNNPACK delegates and Core ML / Core AI convert.
- INDEXED (merge_indexed.py): native comparisons, ReduceSum/Max, ArgMax, CumSum, strided slices and
  gathers, which ONNX Runtime runs faster than the equivalent matmuls.

The spelling is chosen when a model is patched (`apply_merge(..., ops=)`; ARITHMETIC by default)
and stored on the patched modules under OPS_ATTR; their forwards pass it down as an argument. An
exporter that traces another spelling sets it for the trace (`using_ops(model, ops)`), so eager and
the exported graph compute the same way for the same ops value: nothing is read from ambient state.

`traced`: the graph is being traced into a file. Two spellings exist only for that, chosen by this
flag: TopK where eager sorts stably (both order ties by index; `descending_order`), and SigLIP's
static pool head where eager keeps the original head (graphs/models/siglip_head.py).
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol

import torch
from torch import nn

if TYPE_CHECKING:
    from .plan import Protected

# The attribute on a patched module (a Hugging Face backbone, a SigLIP pool head, a tomesd block, a
# video denoiser wrapper) that holds the MergeOps its forward passes down.
OPS_ATTR = "_tomobile_merge_ops"


class SlotMerge(Protocol):
    """A matching step held as indices (merge_indexed.py): sums and averages into the T' slots."""

    def sum(self, x: torch.Tensor) -> torch.Tensor: ...

    def wavg(self, x: torch.Tensor, size: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...


@dataclass(frozen=True)
class MergeOps(abc.ABC):
    """One spelling of the merge's primitive ops. Shapes: B batch, N/T tokens, C channels."""

    traced: bool = False  # traced into a file (see the module docstring)
    name: ClassVar[str]  # recorded in the manifest ("arithmetic", "indexed")

    def for_export(self) -> MergeOps:
        """The same spelling for a graph traced into a file."""
        return dataclasses.replace(self, traced=True)

    def descending_order(self, values: torch.Tensor) -> torch.Tensor:
        """(B, N) -> (B, N) int64 indices by descending value, equal values in index order: ONNX's
        TopK when traced (ties to the lower index by its specification), a stable sort in eager
        (the indexed merges: merge_indexed.py, spatial_merge.py's INDEXED form)."""
        if self.traced:
            return torch.topk(values, values.shape[-1], dim=-1).indices
        return torch.sort(values, dim=-1, descending=True, stable=True).indices

    def ascending(self, idx: torch.Tensor) -> torch.Tensor:
        """Distinct int64 indices (B, K) sorted ascending (no ties, so any sort gives the same)."""
        if self.traced:
            return torch.topk(idx, idx.shape[-1], dim=-1, largest=False).values
        return torch.sort(idx, dim=-1).values

    @abc.abstractmethod
    def greater(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """(a > b) as 0/1 in the dtype of `a`."""

    @abc.abstractmethod
    def eq(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """(a == b) as 0/1 in the dtype of `a`."""

    @abc.abstractmethod
    def row_sum(self, x: torch.Tensor) -> torch.Tensor:
        """Sum over the last axis: (..., N) -> (..., 1)."""

    @abc.abstractmethod
    def row_max(self, x: torch.Tensor) -> torch.Tensor:
        """Max over the last axis: (B, M, N) -> (B, M, 1)."""

    @abc.abstractmethod
    def row_mean(self, x: torch.Tensor) -> torch.Tensor:
        """Mean over the last axis: (..., N) -> (...)."""

    @abc.abstractmethod
    def norm(self, x: torch.Tensor) -> torch.Tensor:
        """L2 norm over the last axis: (B, T, C) -> (B, T, 1)."""

    @abc.abstractmethod
    def select(self, x: torch.Tensor, start: int) -> torch.Tensor:
        """x[:, start::2] of (B, T, C) -> (B, N, C)."""

    @abc.abstractmethod
    def best_partner(self, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Max over the last axis and the lowest index reaching it: (B, M, N) -> (B, M), (B, M) float."""

    @abc.abstractmethod
    def cumsum(self, x: torch.Tensor) -> torch.Tensor:
        """Inclusive cumulative sum over the last axis of (B, N)."""

    @abc.abstractmethod
    def elu(self, x: torch.Tensor) -> torch.Tensor:
        """ELU (alpha 1), elementwise."""

    @abc.abstractmethod
    def head_mean(self, keys: torch.Tensor) -> torch.Tensor:
        """Keys averaged over heads, (B, T, H, d) -> (B, T, d): ToMe's and PiToMe's metric."""

    @abc.abstractmethod
    def class_attention(self, probs: torch.Tensor, start: int) -> torch.Tensor:
        """Row 0 (the class token's attention) of probs (B, H, T, T) from column `start`, averaged
        over heads: (B, T - start) (DiffRate's ranking)."""

    @abc.abstractmethod
    def match(self, metric: torch.Tensor, r: int, protected: Protected,
              valid: torch.Tensor | None = None) -> torch.Tensor | SlotMerge:
        """One bipartite soft matching step on metric (B, T, C) as `merge_wavg` / `merge_sum` take it:
        the one-hot matrix M (B, T - r, T), or a SlotMerge holding the same slots as indices."""


def merge_ops_of(module: nn.Module) -> MergeOps:
    """The spelling a patched module's forward passes down."""
    return getattr(module, OPS_ATTR)


@contextlib.contextmanager
def using_ops(model: nn.Module, ops: MergeOps) -> Iterator[nn.Module]:
    """Every patched module in `model` spells its merge with `ops` inside the block (an exporter
    tracing its format's spelling); each gets its own spelling back afterwards, whatever happens."""
    before = {m: getattr(m, OPS_ATTR) for m in model.modules() if hasattr(m, OPS_ATTR)}
    for module in before:
        setattr(module, OPS_ATTR, ops)
    try:
        yield model
    finally:
        for module, old in before.items():
            setattr(module, OPS_ATTR, old)
