"""Constants of the static merge graphs: the scores the merge sets, and constant matrices.

Scores: cosine similarities lie in [-1, 1]; the merge sets a few exact values beside them, which
every backend compares exactly (equal ones are exact ties, broken by index): duplicates snapped to
1 (merge.snap_duplicates), PAD_PAIR, NO_MATCH, PROTECTED.

Tables: matrices built once per shape in numpy and handed to a graph as constants in the dtype of
the tensor they meet (`table_tensor`): export lifts them as buffers, so no arange/full op (which
ExecuTorch would run on portable kernels) and no cast node (XNNPACK cannot cast inside a partition)
lands in the graph.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

# A large finite negative score: protected tokens sit below every real score, and below pairs that
# may not merge (padding against real tokens).
NO_MATCH = -1.0e4
PROTECTED = -2.0e4
# Two padding tokens score above any cosine, so padding merges with padding first and the
# merges among real tokens depend only on how much padding there is, not on what it holds.
PAD_PAIR = 2.0
# Cosine similarities this close to 1 count as exactly 1 (merge.snap_duplicates): far above how far
# backends' rounding moves the similarity of two equal tokens (a few ulp), far below real differences.
SAME_DELTA = 1e-5
# The scores that are exact constants on every backend (snapped duplicates, PAD_PAIR, NO_MATCH, PROTECTED).
EXACT_SCORES = (1.0, PAD_PAIR, NO_MATCH, PROTECTED)

_NUMPY = {torch.float32: np.float32, torch.float16: np.float16, torch.float64: np.float64, torch.int64: np.int64}


@functools.lru_cache(maxsize=1024)
def table(kind: str, n: int, m: int = 0) -> np.ndarray:
    """Constant matrices of the static graph, built once per shape (eager calls stay cheap):

    ones (n, 1) | select (n, .) one-hot, column k picks row m + 2k | from_end (n,) n - j |
    earlier (n, n) [i, j] = j < i | upper (n, n) [i, j] = i <= j | to_token (n, m) [i, 2i] = 1 |
    slot_ids (n, 1) 0..n-1 | free_row (n, 1) / free_col (n,) 0 at the first m indices, else 1.
    """
    i = np.arange(n)
    if kind == "ones":
        return np.ones((n, 1), np.float32)
    if kind == "select":
        return (i[:, None] == np.arange(m, n, 2)[None, :]).astype(np.float32)
    if kind == "from_end":
        return (n - i).astype(np.float32)
    if kind == "earlier":
        return (i[None, :] < i[:, None]).astype(np.float32)
    if kind == "upper":
        return (i[:, None] <= i[None, :]).astype(np.float32)
    if kind == "to_token":
        return (np.arange(m)[None, :] == 2 * i[:, None]).astype(np.float32)
    if kind == "slot_ids":
        return i.astype(np.float32)[:, None]
    if kind == "free_row":
        return (i >= m).astype(np.float32)[:, None]
    if kind == "free_col":
        return (i >= m).astype(np.float32)
    raise KeyError(kind)


def const(kind: str, like: torch.Tensor, n: int, m: int = 0) -> torch.Tensor:
    """The `table(kind, n, m)` as a graph constant in the dtype and device of `like`."""
    return table_tensor(table(kind, n, m), like)


def table_tensor(values: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    """A numpy table as a graph constant in the dtype and device of `like` (lifted, no cast node)."""
    # astype copies: fresh C strides (numpy gives a new axis stride 0, which ExecuTorch rejects), in
    # the dtype of `like`, so an fp16 graph needs no cast (XNNPACK cannot cast inside a partition)
    return torch.from_numpy(values.astype(_NUMPY[like.dtype])).to(like.device)  # cast in numpy: no cast node
