"""What the training scripts share: the learning-rate schedule and one optimizer step with EMA.

    scripts/train_video_dit.py, scripts/train_wan_shapes.py import it (run from the repository
    root as `python scripts/NAME.py`, this folder is on sys.path).
"""

from __future__ import annotations

import math

import torch

WARMUP = 100


def warmup_cosine(step: int, steps: int, peak: float, warmup: int = WARMUP) -> float:
    """Linear warm-up to `peak` over `warmup` steps, then a cosine down to peak / 10 at `steps`."""
    if step < warmup:
        return peak * (step + 1) / warmup
    frac = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))


def step_with_ema(model: torch.nn.Module, ema: torch.nn.Module, opt: torch.optim.Optimizer, loss: torch.Tensor,
                  lr: float, decay: float) -> None:
    """Back-propagate `loss`, clip the gradient norm at 1, step at `lr`, move `ema` toward the model."""
    for group in opt.param_groups:
        group["lr"] = lr
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    with torch.no_grad():
        for pe, pm in zip(ema.parameters(), model.parameters()):
            pe.lerp_(pm, 1 - decay)
