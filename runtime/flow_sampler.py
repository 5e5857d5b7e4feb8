"""Numpy sampling for diffusers' flow-matching pipelines (Wan): Euler and UniPC, CFG, LPL, TDTM steps.

Convention (diffusers' flow matching): x_sigma = (1 - sigma) x0 + sigma noise, the transformer
predicts v = noise - x0, sampling runs sigma from about 1 down to the schedule's end
(runtime/flow_schedule.py builds the schedule from scheduler_config.json). The loop is
runtime/sampler.py's `run_steps`, shared with video-dit-tiny's sampler; what differs is the step:

- FlowMatchEulerDiscreteScheduler: runtime/sampler.py's `EulerStepper`, x <- x + (sigma_{i+1} -
  sigma_i) v; the transformer gets timestep 1000 sigma_i (float32).
- UniPCMultistepScheduler, flow prediction (`UniPCStepper` below): each velocity becomes the data
  estimate m_i = x_i - sigma_i v_i (diffusers' convert_model_output); a corrector (UniC) refines
  x_i from x_{i-1} and m_{i-1}, m_i, then a predictor (UniP) steps to sigma_{i+1} from the last
  `order` estimates. The transformer gets the integer timestep of the schedule.

Every float32 scalar of UniPC's update (ratios, B(h), rho) is computed in the same float32 stages
as diffusers from its float32 sigmas, so the steps equal diffusers' to float32 rounding. Those
scalars need log and expm1; platforms' math libraries disagree in their last bits, so they use
runtime/noise.py's `portable_log` and `portable_expm1` below, both from +, -, *, / only: every
port computes the same coefficient bits. The tensor work itself is +, -, * and / on float32.

LPL on flow matching, for both solvers: after N steps, evaluate the velocity once more and jump
over the whole remaining sigma, x0 = x - sigma_N v (runtime/sampler.py's `leap`). For UniPC that
jump is the flow-predicted data estimate m_N of the sample the transformer saw (no corrector):
exactly what UniPC's own last step returns when the schedule ends at sigma 0 (lower_order_final
takes order 1 there, and UniP's order-1 step to sigma 0 is m), moved earlier. `auto` is
On-device Sora's similarity rule, runtime/sampler.py's `AutoLeap`.

Classifier-free guidance as WanPipeline: with guidance > 1, v = v_uncond + g (v_cond - v_uncond)
(two transformer calls, the negative prompt's states for v_uncond; g rounded to float32 as torch
multiplies a float32 tensor by a Python float); with guidance <= 1 only the conditional call.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..graphs.errors import InputError
from .flow_schedule import FlowSchedule, SchedulerKind
from .noise import portable_log
from .sampler import EulerStepper, LeapConfig, SampleResult, Stepper, VelocityFn, check_leap, leap, run_steps

log = logging.getLogger(__name__)

f32 = np.float32
# fdlibm's split of ln 2 (the high part has trailing zero bits, so k * LN2_HI is exact).
LN2_HI, LN2_LO = 6.93147180369123816490e-01, 1.90821492927058770002e-10
EXPM1_TERMS = 20  # |r| <= ln2 / 2: the 21st Taylor term is below 1e-28


def portable_expm1(x: float) -> float:
    """e^x - 1 (float64) from +, -, *, / only: x = k ln2 + r, |r| <= ln2 / 2, expm1(r) by its Taylor
    series (Horner form), then 2^k expm1(r) + (2^k - 1). -inf gives -1 (UniPC's step to sigma 0)."""
    if x == -math.inf or x < -40.0:  # e^x below half an ulp of 1: -1 exactly in float64
        return -1.0
    k = math.floor(x / (LN2_HI + LN2_LO) + 0.5)
    r = (x - k * LN2_HI) - k * LN2_LO
    p = 1.0  # Horner form of expm1(r) = r (1 + r/2 (1 + r/3 (1 + ...)))
    for n in range(EXPM1_TERMS, 1, -1):
        p = 1.0 + r * p / n
    scale = 2.0**k
    return scale * (r * p) + (scale - 1.0)


def log_snr(sigma: np.float32) -> np.float32:
    """lambda = log(alpha) - log(sigma) with alpha = 1 - sigma, in float32 stages; +inf at sigma 0."""
    if sigma == 0:
        return f32(math.inf)
    return f32(f32(portable_log(float(f32(1) - sigma))) - f32(portable_log(float(sigma))))


def solve(matrix: list[list[float]], rhs: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting (float64), for UniPC's order-3 rho (diffusers:
    torch.linalg.solve in float32; a 2 x 2 or 3 x 3 system)."""
    n = len(rhs)
    a = [[float(v) for v in row] + [float(r)] for row, r in zip(matrix, rhs)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(a[r][col]))
        a[col], a[pivot] = a[pivot], a[col]
        for r in range(col + 1, n):
            f = a[r][col] / a[col][col]
            a[r] = [x - f * y for x, y in zip(a[r], a[col])]
    out = [0.0] * n
    for r in reversed(range(n)):
        out[r] = (a[r][n] - sum(a[r][c] * out[c] for c in range(r + 1, n))) / a[r][r]
    return out


@dataclass(frozen=True)
class UniPCUpdate:
    """One UniPC update from sigma_s0 to sigma_t, float32 scalars:
    x_t = ratio x - c_m0 m0 - c_b (sum_k rho_k (m_k - m0) / r_k [+ rho_t (m_t - m0) for the corrector])."""

    ratio: np.float32  # sigma_t / sigma_s0
    c_m0: np.float32  # alpha_t h phi_1(h)
    c_b: np.float32  # alpha_t B(h)
    rks: tuple[np.float32, ...]  # (lambda_{s_k} - lambda_s0) / h for the history k = 1..order-1
    rhos: tuple[np.float32, ...]  # predictor: one per history entry; corrector: and one for m_t


def unipc_update(sigmas: tuple[float, ...], s0: int, t: int, order: int, bh2: bool, corrector: bool) -> UniPCUpdate:
    """diffusers' multistep_uni_{p,c}_bh_update scalars (predict_x0, flow sigmas) for the step from
    sigma index s0 to t with history indices s0 - 1, ..., s0 - order + 1."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # sigma_t = 0: h = inf, as diffusers
        return _unipc_update(sigmas, s0, t, order, bh2, corrector)


def _unipc_update(sigmas: tuple[float, ...], s0: int, t: int, order: int, bh2: bool, corrector: bool) -> UniPCUpdate:
    sig = [f32(s) for s in sigmas]
    lam_t, lam_s0 = log_snr(sig[t]), log_snr(sig[s0])
    h = f32(lam_t - lam_s0)
    rks = [f32(f32(log_snr(sig[s0 - k]) - lam_s0) / h) for k in range(1, order)]
    hh = -h
    h_phi_1 = f32(portable_expm1(float(hh)))
    h_phi_k = f32(f32(h_phi_1 / hh) - f32(1))
    b_h = hh if not bh2 else h_phi_1  # bh1: B(h) = hh; bh2: B(h) = expm1(hh)
    factorial, b = 1, []
    for i in range(1, order + 1):
        b.append(f32(f32(h_phi_k * f32(factorial)) / b_h))
        factorial *= i + 1
        h_phi_k = f32(f32(h_phi_k / hh) - f32(1 / factorial))
    powers = [[f32(r) ** (i - 1) for r in (*rks, f32(1))] for i in range(1, order + 1)]  # R[i][k] = rk_k^(i-1)
    if corrector:
        rhos = [f32(0.5)] if order == 1 else [f32(v) for v in solve(powers, b)]
    elif order == 1:
        rhos = []
    else:
        rhos = [f32(0.5)] if order == 2 else [f32(v) for v in solve([r[:-1] for r in powers[:-1]], b[:-1])]
    alpha_t = f32(1) - sig[t]
    return UniPCUpdate(f32(sig[t] / sig[s0]), f32(alpha_t * h_phi_1), f32(alpha_t * b_h), tuple(rks), tuple(rhos))


def predictor_orders(schedule: FlowSchedule) -> list[int]:
    """UniP's order at each step: the solver order, lowered while history builds up (warm-up) and,
    with lower_order_final, near the end (min(order, steps - i))."""
    n = schedule.steps
    out = []
    for i in range(n):
        order = min(schedule.order, n - i) if schedule.lower_order_final else schedule.order
        out.append(min(order, min(i, schedule.order) + 1))
    return out


def _apply(u: UniPCUpdate, x: np.ndarray, history: list[np.ndarray], m_t: np.ndarray | None) -> np.ndarray:
    """x_t from x and the data estimates, newest last in `history` (m0 = history[-1]), float32,
    in diffusers' operation order."""
    m0 = history[-1]
    x_t = u.ratio * x - u.c_m0 * m0
    res = None
    for k, (rk, rho) in enumerate(zip(u.rks, u.rhos), start=1):
        term = rho * ((history[-1 - k] - m0) / rk)
        res = term if res is None else res + term
    if m_t is not None:
        d1_t = u.rhos[-1] * (m_t - m0)
        res = d1_t if res is None else res + d1_t
    return x_t if res is None else x_t - u.c_b * res


class UniPCStepper:
    """diffusers' UniPCMultistepScheduler (flow prediction, predict_x0) as a stepper for `run_steps`.
    Its coefficients are computed once per schedule; one instance samples one clip (it keeps the
    last `order` data estimates and the last sample)."""

    def __init__(self, schedule: FlowSchedule) -> None:
        if schedule.kind is not SchedulerKind.UNIPC:
            raise InputError(f"UniPCStepper needs a UniPC schedule, got {schedule.kind.value}")
        self.sigmas, self.times = schedule.sigmas, schedule.timesteps
        orders = predictor_orders(schedule)
        bh2 = schedule.solver_type == "bh2"
        self.predictors = [unipc_update(self.sigmas, i, i + 1, p, bh2, False) for i, p in enumerate(orders)]
        self.correctors: list[UniPCUpdate | None] = [None] + [
            None if i - 1 in schedule.disable_corrector else unipc_update(self.sigmas, i - 1, i, orders[i - 1], bh2, True)
            for i in range(1, schedule.steps)]
        self.keep = schedule.order
        self.history: list[np.ndarray] = []
        self.last: np.ndarray | None = None

    def step(self, i: int, x: np.ndarray, v: np.ndarray) -> np.ndarray:
        m = leap(x, v, self.sigmas[i])  # the data estimate x - sigma v (convert_model_output)
        corrector = self.correctors[i]
        if corrector is not None and self.last is not None:
            x = _apply(corrector, self.last, self.history, m)
        self.history = (self.history + [m])[-self.keep:]
        self.last = x
        return _apply(self.predictors[i], x, self.history, None)


def stepper_for(schedule: FlowSchedule) -> Stepper:
    """A fresh stepper for one clip on `schedule`."""
    if schedule.kind is SchedulerKind.EULER:
        return EulerStepper(schedule.sigmas, schedule.timesteps)
    return UniPCStepper(schedule)


@dataclass(frozen=True)
class FlowSamplerConfig:
    """A run on a diffusers flow schedule: guidance (WanPipeline's rule), LPL, TDTM steps."""

    schedule: FlowSchedule
    guidance: float = 5.0
    leap: LeapConfig = field(default_factory=LeapConfig)
    tdtm_steps: int = 0

    def __post_init__(self) -> None:
        steps = self.schedule.steps
        if not math.isfinite(self.guidance):
            raise InputError(f"guidance must be a finite number, got {self.guidance}")
        if not 0 <= self.tdtm_steps <= steps:
            raise InputError(f"TDTM steps must be 0..{steps} for {steps} steps, got {self.tdtm_steps}")
        check_leap(self.leap, steps)


DenoiseFn = Callable[[np.ndarray, float, np.ndarray, bool], np.ndarray]  # (x, timestep, states, merged) -> v


def guided(denoise: DenoiseFn, cond: np.ndarray, uncond: np.ndarray | None, guidance: float) -> VelocityFn:
    """WanPipeline's classifier-free guidance around one transformer call per prompt:
    v_u + g (v_c - v_u) for g > 1 (uncond: the negative prompt's states), v_c alone otherwise."""
    g = f32(guidance)

    def velocity(x: np.ndarray, t: float, merged: bool) -> np.ndarray:
        v_c = denoise(x, t, cond, merged)
        if guidance <= 1.0:
            return v_c
        if uncond is None:
            raise InputError(f"guidance {guidance:g} > 1 needs the negative prompt's states")
        v_u = denoise(x, t, uncond, merged)
        return v_u + g * (v_c - v_u)

    return velocity


def sample_flow(velocity: VelocityFn, latents: np.ndarray, cfg: FlowSamplerConfig,
                on_step: Callable[[int], None] | None = None) -> SampleResult:
    """Sample from `latents` (the noise at sigma_0) on cfg's schedule; steps i < tdtm_steps run merged."""
    return run_steps(velocity, latents, stepper_for(cfg.schedule), cfg.leap, cfg.tdtm_steps, on_step)
