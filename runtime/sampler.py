"""Rectified-flow sampling (Open-Sora), with On-device Sora's step leaping (LPL) and TDTM schedule.

Convention: x_t = (1 - t) x0 + t eps, the denoiser predicts v = eps - x0, and sampling runs from
t = 1 (noise) to t = 0 with Euler steps x <- x - v dt. Timesteps are shifted toward the noisy end
by Open-Sora's transform t' = a t / (1 + (a - 1) t).

The sampler is numpy-only and calls `velocity(x, t, merged) -> v` (classifier-free guidance is the
callable's job), so the same loop drives eager PyTorch, ONNX Runtime and ExecuTorch. The loop
(`run_steps`: TDTM steps, fixed and auto leaps) takes its step from a `Stepper`; diffusers' flow
schedulers (runtime/flow_sampler.py) share it with this Euler sampler.

LPL (Linear Proportional Leap): at a leap step the velocity just evaluated is followed over the
whole remaining time, x0 = x - v t, and sampling stops. Fixed: after N normal steps (N + 1 calls).
Auto: from `min_steps` on, watch the cosine similarity of consecutive velocity predictions and leap
once it has not beaten its best by more than `tolerance` for `patience` steps (On-device Sora's
rule and defaults: step 14 of 30, 1e-3, 3).

Modes that follow the original code by default (the other mode stays selectable):
- timesteps: `discrete` (Open-Sora's RFLOW, use_discrete_timesteps=True): t_i = round((1 - i/N) 1000)
  / 1000, rounded half to even as Python's round, then shifted; `continuous`: t_i = shift(1 - i/N).
- LPL similarity: `original` (On-device Sora: cosine_similarity(prev[0,0,0], cur[0,0,0], dim=1).mean(),
  i.e. one cosine per row of batch 0, channel 0, frame 0, averaged over the rows); `full`: one
  cosine over the whole velocity. Both in float64 with sums taken in index order, so every port
  computes the same bits from the same velocities.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

import numpy as np

from ..graphs.errors import InputError

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


class TimestepMode(str, Enum):
    DISCRETE = "discrete"
    CONTINUOUS = "continuous"


# Open-Sora's RFLOW trains and samples on num_timesteps = 1000 integer steps.
NUM_TIMESTEPS = 1000


def timesteps(steps: int, ratio: float, mode: TimestepMode = TimestepMode.DISCRETE) -> list[float]:
    """steps + 1 times from 1 down to 0: shift(u_i) for i = 0..steps-1, then 0.

    continuous: u_i = 1 - i / steps. discrete (Open-Sora): u_i = round((1 - i / steps) * 1000) / 1000,
    with Python's round (half to even) on the float64 product, as RFLOW's int(round(t))."""
    mode = TimestepMode(mode)
    if mode is TimestepMode.DISCRETE and steps > NUM_TIMESTEPS:
        raise InputError(f"discrete timesteps allow at most {NUM_TIMESTEPS} steps, got {steps}; use continuous timesteps")
    times = []
    for i in range(steps):
        u = 1.0 - i / steps
        if mode is TimestepMode.DISCRETE:
            u = round(u * NUM_TIMESTEPS) / NUM_TIMESTEPS
        times.append(float(shift_time(u, ratio)))
    return times + [0.0]


class LeapMode(str, Enum):
    OFF = "off"
    FIXED = "fixed"
    AUTO = "auto"


class SimilarityMode(str, Enum):
    ORIGINAL = "original"  # On-device Sora: row cosines of v[0, 0, 0], averaged
    FULL = "full"  # one cosine over the whole velocity


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
    similarity: SimilarityMode = SimilarityMode.ORIGINAL

    @classmethod
    def parse(cls, text: str, similarity: SimilarityMode | str = SimilarityMode.ORIGINAL) -> LeapConfig:
        """'off' | 'auto' | N (fixed leap after N steps)."""
        value = text.strip().lower()
        sim = parse_mode(SimilarityMode, similarity, "LPL similarity")
        if value == "off":
            return cls(similarity=sim)
        if value == "auto":
            return cls(mode=LeapMode.AUTO, similarity=sim)
        if value.isascii() and value.isdigit() and int(value) >= 1:
            return cls(mode=LeapMode.FIXED, step=int(value), similarity=sim)
        raise InputError(f"bad leap value {text!r}; allowed: off, auto, or a step count N >= 1")


def parse_mode(enum: type[Enum], value, option: str):
    """A mode enum member from its value; a wrong value is a one-line error listing the allowed ones."""
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(m.value for m in enum)
        raise InputError(f"bad {option} value {value!r}; allowed: {allowed}") from None


@dataclass(frozen=True)
class SamplerConfig:
    steps: int = 30
    guidance: float = 4.0
    shift: float = 2.0
    leap: LeapConfig = field(default_factory=LeapConfig)
    tdtm_steps: int = 0
    timesteps: TimestepMode = TimestepMode.DISCRETE

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise InputError(f"steps must be >= 1, got {self.steps}")
        if TimestepMode(self.timesteps) is TimestepMode.DISCRETE and self.steps > NUM_TIMESTEPS:
            raise InputError(f"discrete timesteps allow at most {NUM_TIMESTEPS} steps, got {self.steps}")
        if not 0 <= self.tdtm_steps <= self.steps:
            raise InputError(f"TDTM steps must be 0..{self.steps} for {self.steps} steps, "
                             f"got {self.tdtm_steps}")
        if not (math.isfinite(self.guidance) and math.isfinite(self.shift)):
            raise InputError(f"guidance and shift must be finite numbers, got {self.guidance} and {self.shift}")
        check_leap(self.leap, self.steps)


def check_leap(leap: LeapConfig, steps: int) -> None:
    """A fixed leap must come before the last step (there the last step already ends at the data)."""
    if leap.mode is LeapMode.FIXED and not 1 <= leap.step <= steps - 2:
        raise InputError(f"a leap after N steps needs 1 <= N <= {steps - 2} for {steps} "
                         f"steps; got {leap.step} (at N = {steps - 1} the last step is a plain step: "
                         "no leap)")


@dataclass
class SampleResult:
    x: np.ndarray
    calls: int = 0
    merged_calls: int = 0
    leap_at: int | None = None
    similarities: list[float] = field(default_factory=list)


# torch.nn.functional.cosine_similarity's default eps: each norm is clamped to at least this.
COSINE_EPS = 1e-8


def _ordered_sums(*products: np.ndarray) -> np.ndarray:
    """Sums over the last axis, in index order (float64): the same bits in every language's plain loop.

    numpy's sum is pairwise and its BLAS calls (dot, norm) leave threads spinning that slowed the
    next ONNX Runtime call from 35 to 58 ms on 2 cores; cumsum is a sequential loop."""
    return np.stack([np.cumsum(p, axis=-1)[..., -1] for p in products])


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine per row of two (R, N) arrays: a.b / (max(|a|, eps) max(|b|, eps)), float64."""
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ab, aa, bb = _ordered_sums(a64 * b64, a64 * a64, b64 * b64)
    return ab / (np.maximum(np.sqrt(aa), COSINE_EPS) * np.maximum(np.sqrt(bb), COSINE_EPS))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """One cosine over all elements (the `full` similarity)."""
    return float(cosine_rows(np.ravel(a)[None], np.ravel(b)[None])[0])


def velocity_similarity(prev: np.ndarray, cur: np.ndarray, mode: SimilarityMode) -> float:
    """LPL's similarity of consecutive velocities (B, C, T, H, W).

    original: row cosines of the plane [0, 0, 0] (H rows of W), averaged in row order; full: one
    cosine over the whole tensor."""
    if SimilarityMode(mode) is SimilarityMode.FULL:
        return cosine(prev, cur)
    if np.ndim(cur) != 5:
        raise InputError(f"the original LPL similarity needs velocities (B, C, T, H, W), got shape {np.shape(cur)}")
    rows = cosine_rows(prev[0, 0, 0], cur[0, 0, 0])  # (H,)
    return float(_ordered_sums(rows)[0] / rows.shape[0])


class AutoLeap:
    """On-device Sora's dynamic leap rule: leap once the similarity of consecutive velocities stops improving.

    From step `min_steps` on, each step compares the cosine similarity of this velocity and the last
    one with the best similarity seen since `min_steps`: a gain of more than `tolerance` makes it the
    new best and refills the patience; anything else spends one unit of patience. With patience
    spent, the sampler leaps with the velocity it just evaluated. The similarity follows
    `cfg.similarity` (see velocity_similarity).
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
        return self.observe(step, velocity_similarity(prev, v, self.cfg.similarity))

    def observe(self, step: int, similarity: float) -> bool:
        """The rule on its own: record step's similarity (to the previous step's velocity), say whether to leap."""
        self.sims.append(similarity)
        if step < self.min_steps:
            return False
        if similarity > self.best + self.cfg.tolerance:
            self.best, self.left = similarity, self.cfg.patience
            return False
        self.left -= 1
        return self.left <= 0


class Stepper(Protocol):
    """A solver's update from the velocity evaluated at step i: `times[i]` is what the velocity
    callable receives, `sigmas[i]` the noise level there (steps + 1 of them, the last the end)."""

    times: Sequence[float]
    sigmas: Sequence[float]

    def step(self, i: int, x: np.ndarray, v: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class EulerStepper:
    """x <- x - v (sigma_i - sigma_{i+1}), the difference rounded to float32 (diffusers'
    FlowMatchEulerDiscreteScheduler computes dt in float32 from float32 sigmas: the same bits)."""

    sigmas: Sequence[float]
    times: Sequence[float]

    def step(self, i: int, x: np.ndarray, v: np.ndarray) -> np.ndarray:
        return x - v * np.float32(self.sigmas[i] - self.sigmas[i + 1])


def leap(x: np.ndarray, v: np.ndarray, sigma: float) -> np.ndarray:
    """LPL's jump over the whole remaining noise level: the data the velocity points to, x - v sigma."""
    return x - v * np.float32(sigma)


def run_steps(
    velocity: VelocityFn,
    noise: np.ndarray,
    stepper: Stepper,
    leap_cfg: LeapConfig,
    tdtm_steps: int,
    on_step: Callable[[int], None] | None = None,
) -> SampleResult:
    """The sampling loop every solver shares: step i runs merged (TDTM) when i < tdtm_steps, and a
    fixed or auto leap (LPL) replaces the rest of the steps by `leap` with the velocity just evaluated."""
    steps = len(stepper.times)
    x = noise.astype(np.float32)
    result = SampleResult(x)
    auto = AutoLeap(leap_cfg, steps) if leap_cfg.mode is LeapMode.AUTO else None
    for i in range(steps):
        merged = i < tdtm_steps
        v = velocity(x, stepper.times[i], merged)
        result.calls += 1
        result.merged_calls += int(merged)
        jump = leap_cfg.mode is LeapMode.FIXED and i == leap_cfg.step
        if auto is not None and auto.should_leap(i, v):
            jump = True
        if jump and i < steps - 1:
            x = leap(x, v, stepper.sigmas[i])
            result.leap_at = i
            if on_step is not None:
                on_step(steps - i)
            break
        x = stepper.step(i, x, v)
        if on_step is not None:
            on_step(1)
    result.x = x
    if auto is not None:
        result.similarities = auto.sims
    log.info("sampled: %d calls (%d merged), leap at %s", result.calls, result.merged_calls, result.leap_at)
    return result


def sample(
    velocity: VelocityFn,
    noise: np.ndarray,
    cfg: SamplerConfig,
    on_step: Callable[[int], None] | None = None,
) -> SampleResult:
    """Euler sampling from `noise` (t = 1) to t = 0 on Open-Sora's timesteps (the velocity gets t)."""
    ts = timesteps(cfg.steps, cfg.shift, cfg.timesteps)
    return run_steps(velocity, noise, EulerStepper(ts, ts[:-1]), cfg.leap, cfg.tdtm_steps, on_step)
