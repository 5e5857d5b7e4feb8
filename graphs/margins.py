"""How close an eager forward came to flipping a merge decision, and seeded inputs that stay clear.

A merge is a discrete choice: a source token joins the destination it is most similar to, and the
r best-scored sources merge. Where the best and the runner-up differ by a few ulp, every backend's
own rounding (about 1e-7 relative per op, more after a few layers) may pick the other one, and the
output then differs by far more than any float tolerance: video-dit-tiny's `denoiser_tome` seeded
case had a runner-up 3.0e-7 below the best partner, and Core AI took it (5.8e-3 off; ONNX Runtime
happened not to). Such an input tests luck, not the artifact. So the seeded test vectors are drawn
from the first seed whose decisions all clear MIN_MARGIN (exact ties are not near-misses: they break
to the lowest index on every backend). Real inputs are what they are and are kept as given.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator
from contextvars import ContextVar

import torch

MIN_MARGIN = 2e-6  # a decision closer than this is a near-miss: ~30 ulp of a cosine near 1
SEEDS = 8  # seeds tried for the seeded test vectors
_NEAR_MISSES: ContextVar[list[float] | None] = ContextVar("tomobile_merge_margins", default=None)
_LOG = logging.getLogger(__name__)


@contextlib.contextmanager
def recording() -> Iterator[list[float]]:
    """Inside this block, every eager merge step appends the smallest nonzero gap of its decisions."""
    margins: list[float] = []
    token = _NEAR_MISSES.set(margins)
    try:
        yield margins
    finally:
        _NEAR_MISSES.reset(token)


def note(scores: torch.Tensor, best: torch.Tensor, r: int) -> None:
    """While recording (eager only): the smallest nonzero gap between the best partner and the
    runner-up (scores (..., Ns, Nd)) and between the r-th and (r+1)-th best score (best (..., Ns))."""
    margins = _NEAR_MISSES.get()
    if margins is None or torch.compiler.is_exporting():
        return
    s = scores.detach().double()
    top = s.amax(dim=-1, keepdim=True)  # (..., Ns, 1)
    runner_up = torch.where(s < top, s, torch.full_like(s, -math.inf)).amax(dim=-1)  # strictly below the best
    gaps = [(top.squeeze(-1) - runner_up).flatten()]
    ranked = best.detach().double().sort(dim=-1, descending=True).values  # (..., Ns)
    if 0 < r < ranked.shape[-1]:
        gaps.append((ranked[..., r - 1] - ranked[..., r]).flatten())
    gap = torch.cat(gaps)
    gap = gap[torch.isfinite(gap) & (gap > 0)]
    margins.append(float(gap.min()) if gap.numel() else math.inf)


def seeded_inputs(wrapper: torch.nn.Module) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...], int]:
    """(inputs, eager outputs, seed): `wrapper.example_inputs(seed)` for the first seed in
    range(SEEDS) whose merge decisions all clear MIN_MARGIN; models without merges take seed 0
    at no extra cost. If none clears it, the seed with the widest margin, with a warning."""
    widest = None
    for seed in range(SEEDS):
        inputs = wrapper.example_inputs(seed=seed)
        with recording() as margins, torch.no_grad():
            outputs = wrapper(*inputs)
        low = min(margins, default=math.inf)
        if low >= MIN_MARGIN:
            return inputs, outputs, seed
        if widest is None or low > widest[0]:
            widest = (low, inputs, outputs, seed)
    low, inputs, outputs, seed = widest
    _LOG.warning("seeded test inputs: every seed in 0..%d puts a merge decision within %.2g of a flip "
                 "(seed %d: %.2g); validation of merged parts may fail on rounding", SEEDS - 1, MIN_MARGIN, seed, low)
    return inputs, outputs, seed
