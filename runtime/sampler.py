"""Rectified-flow sampling (Open-Sora), with On-device Sora's step leaping (LPL) and TDTM schedule.

Convention: x_t = (1 - t) x0 + t eps, the denoiser predicts v = eps - x0, and sampling runs from
t = 1 (noise) to t = 0 with Euler steps x <- x - v dt. Timesteps are shifted toward the noisy end
by Open-Sora's transform t' = a t / (1 + (a - 1) t).

The sampler is numpy-only and calls `velocity(x, t, merged) -> v` (classifier-free guidance is the
callable's job), so the same loop drives eager PyTorch, ONNX Runtime and ExecuTorch.

LPL (Linear Proportional Leap): at a leap step the velocity just evaluated is followed over the
whole remaining time, x0 = x - v t, and sampling stops. Fixed: after N normal steps (N + 1 calls).
Auto: from `min_steps` on, watch the cosine similarity of consecutive velocity predictions and leap
once it has not beaten its best by more than `tolerance` for `patience` steps (On-device Sora's
rule and defaults: step 14 of 30, 1e-3, 3).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

log = logging.getLogger(__name__)

# On-device Sora's RFLOW scheduler: minimum_steps = 14 for its 30-step sampling.
AUTO_MIN_STEPS, AUTO_REFERENCE_STEPS = 14, 30

VelocityFn = Callable[[np.ndarray, float, bool], np.ndarray]


def shift_ratio(height: int, width: int, frames: int, base_resolution: int = 16 * 16, base_frames: int = 8) -> float:
    """Open-Sora's timestep-transform ratio: sqrt(pixels / base) * sqrt(frames / base_frames)."""
    return math.sqrt(height * width / base_resolution) * math.sqrt(frames / base_frames)


def shift_time(t, ratio: float):
    """t -> ratio t / (1 + (ratio - 1) t); works on floats, numpy arrays and torch tensors."""
    return ratio * t / (1 + (ratio - 1) * t)


def default_min_steps(steps: int) -> int:
    """On-device Sora's minimum before a dynamic leap: step 14 of 30, in proportion for other counts."""
    return max(1, round(steps * AUTO_MIN_STEPS / AUTO_REFERENCE_STEPS))


def timesteps(steps: int, ratio: float) -> list[float]:
    """steps + 1 times from 1 down to 0: shift((steps - i) / steps) for i = 0..steps."""
    return [float(shift_time((steps - i) / steps, ratio)) for i in range(steps + 1)]


class LeapMode(str, Enum):
    OFF = "off"
    FIXED = "fixed"
    AUTO = "auto"


@dataclass(frozen=True)
class LeapConfig:
    """LPL settings. `step`: fixed leap after this many normal steps. Auto (On-device Sora's
    defaults): min_steps (None: 14 of 30 steps, scaled to the step count), tolerance on the gain
    in cosine similarity over the best so far, patience in steps without such a gain."""

    mode: LeapMode = LeapMode.OFF
    step: int = 15
    min_steps: int | None = None
    tolerance: float = 1e-3
    patience: int = 3

    @classmethod
    def parse(cls, text: str) -> LeapConfig:
        """'off' | 'auto' | N (fixed leap after N steps)."""
        value = text.strip().lower()
        if value == "off":
            return cls()
        if value == "auto":
            return cls(mode=LeapMode.AUTO)
        if value.isdigit() and int(value) >= 1:
            return cls(mode=LeapMode.FIXED, step=int(value))
        raise ValueError(f"bad --lpl value {text!r}; allowed: off, auto, or a step count N >= 1")


@dataclass(frozen=True)
class SamplerConfig:
    steps: int = 30
    guidance: float = 4.0
    shift: float = 2.0
    leap: LeapConfig = field(default_factory=LeapConfig)
    tdtm_steps: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if not 0 <= self.tdtm_steps <= self.steps:
            raise ValueError(f"TDTM steps (--tdtm-steps) must be 0..{self.steps} for {self.steps} steps, "
                             f"got {self.tdtm_steps}")
        if not (math.isfinite(self.guidance) and math.isfinite(self.shift)):
            raise ValueError(f"guidance and shift must be finite numbers, got {self.guidance} and {self.shift}")
        if self.leap.mode is LeapMode.FIXED and not 1 <= self.leap.step <= self.steps - 2:
            raise ValueError(f"a leap after N steps (--lpl N) needs 1 <= N <= {self.steps - 2} for {self.steps} "
                             f"steps; got {self.leap.step} (at N = {self.steps - 1} the last step is a plain step: "
                             "no leap)")


@dataclass
class SampleResult:
    x: np.ndarray
    calls: int = 0
    merged_calls: int = 0
    leap_at: int | None = None
    similarities: list[float] = field(default_factory=list)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity in float64 with plain elementwise sums: numpy's BLAS (dot, norm) leaves
    its threads spinning and slowed the next ONNX Runtime call from 35 to 58 ms on 2 cores."""
    a64, b64 = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float((a64 * b64).sum() / max(np.sqrt((a64 * a64).sum() * (b64 * b64).sum()), 1e-12))


class _AutoLeap:
    """On-device Sora's dynamic leap rule: leap once the similarity of consecutive velocities stops improving.

    From step `min_steps` on, each step compares the cosine similarity of this velocity and the last
    one with the best similarity seen since `min_steps`: a gain of more than `tolerance` makes it the
    new best and refills the patience; anything else spends one unit of patience. With patience
    spent, the sampler leaps with the velocity it just evaluated. On-device Sora computes the
    similarity on one channel of one frame; here it covers the whole velocity.
    """

    def __init__(self, cfg: LeapConfig, steps: int) -> None:
        self.cfg = cfg
        self.min_steps = cfg.min_steps if cfg.min_steps is not None else default_min_steps(steps)
        self.prev: np.ndarray | None = None
        self.best = 0.0
        self.left = cfg.patience
        self.sims: list[float] = []

    def should_leap(self, step: int, v: np.ndarray) -> bool:
        prev, self.prev = self.prev, v
        if prev is None:
            return False
        self.sims.append(cosine(prev, v))
        if step < self.min_steps:
            return False
        if self.sims[-1] > self.best + self.cfg.tolerance:
            self.best, self.left = self.sims[-1], self.cfg.patience
            return False
        self.left -= 1
        return self.left <= 0


def sample(
    velocity: VelocityFn,
    noise: np.ndarray,
    cfg: SamplerConfig,
    on_step: Callable[[int], None] | None = None,
) -> SampleResult:
    """Euler sampling from `noise` (t = 1) to t = 0. Step i runs merged (TDTM) when i < tdtm_steps."""
    ts = timesteps(cfg.steps, cfg.shift)
    x = noise.astype(np.float32)
    result = SampleResult(x)
    auto = _AutoLeap(cfg.leap, cfg.steps) if cfg.leap.mode is LeapMode.AUTO else None
    for i in range(cfg.steps):
        merged = i < cfg.tdtm_steps
        v = velocity(x, ts[i], merged)
        result.calls += 1
        result.merged_calls += int(merged)
        leap = cfg.leap.mode is LeapMode.FIXED and i == cfg.leap.step
        if auto is not None and auto.should_leap(i, v):
            leap = True
        if leap and i < cfg.steps - 1:
            x = x - v * np.float32(ts[i])  # jump over the whole remaining time
            result.leap_at = i
            if on_step is not None:
                on_step(cfg.steps - i)
            break
        x = x - v * np.float32(ts[i] - ts[i + 1])
        if on_step is not None:
            on_step(1)
    result.x = x
    if auto is not None:
        result.similarities = auto.sims
    log.info("sampled: %d calls (%d merged), leap at %s", result.calls, result.merged_calls, result.leap_at)
    return result
