"""Flow-matching schedules of diffusers' schedulers, from a pipeline's scheduler_config.json.

Two classes, the ones WanPipeline ships with: `FlowMatchEulerDiscreteScheduler` (the pipeline's
own default) and `UniPCMultistepScheduler` with flow prediction (Wan 2.1's shipped
scheduler_config.json: flow_shift 3.0, solver_order 2, bh2, lower_order_final, final sigma 0).
Any other class, and options these two have that WanPipeline never uses (Karras, exponential or
beta sigmas, dynamic shifting, which needs a `mu` WanPipeline never passes, stochastic sampling,
thresholding), are refused in one line.

The schedule is what diffusers' `set_timesteps` computes, to the bit: `sigmas` (steps + 1 values,
float32, the last 0) and `timesteps`, the values the transformer is called with (float32
1000 sigma for Euler; for UniPC float64 1000 sigma truncated to an integer, as diffusers casts to
int64). Everything is float64 or float32 +, -, *, / in plain loops (numpy's linspace written out),
so every platform that rounds IEEE-754 the same computes the same bits; Euler's construction
rounds through float32 where diffusers does (its scheduler builds the training sigmas in torch
float32 before `set_timesteps` shifts again in float64). UniPC's solver coefficients need log and
expm1: see runtime/flow_sampler.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np

from ..graphs.errors import InputError

f32 = np.float32


class SchedulerKind(str, Enum):
    EULER = "FlowMatchEulerDiscreteScheduler"
    UNIPC = "UniPCMultistepScheduler"


class SchedulerError(InputError):
    """A scheduler class or setting the numpy sampler does not implement: one line, exit code 2."""


@dataclass(frozen=True)
class FlowSchedule:
    """What the sampler needs from a scheduler config for `steps` steps.

    sigmas: steps + 1 noise levels (float32 values), sigmas[-1] the final one (0, or sigma_min);
    timesteps: steps values the transformer receives; the UniPC settings (order, lower_order_final,
    solver_type, disable_corrector) are diffusers' own (order 1 for Euler)."""

    kind: SchedulerKind
    sigmas: tuple[float, ...]
    timesteps: tuple[float, ...]
    order: int = 1
    lower_order_final: bool = True
    solver_type: str = "bh2"
    disable_corrector: tuple[int, ...] = ()

    @property
    def steps(self) -> int:
        return len(self.timesteps)


# Settings WanPipeline never turns on: refused when truthy, with the reason.
UNSUPPORTED = {
    "use_karras_sigmas": "Karras sigmas", "use_exponential_sigmas": "exponential sigmas",
    "use_beta_sigmas": "beta sigmas", "invert_sigmas": "inverted sigmas", "stochastic_sampling": "stochastic sampling",
    "thresholding": "dynamic thresholding", "solver_p": "a solver_p scheduler",
    "use_dynamic_shifting": "dynamic shifting (it needs a mu that WanPipeline never passes)",
}


def linspace(start: float, stop: float, num: int) -> list[float]:
    """numpy.linspace(start, stop, num) (float64, endpoint) written out: i * step + start, last = stop."""
    if num == 1:
        return [float(start)]
    step = (stop - start) / (num - 1)
    values = [i * step + start for i in range(num)]
    values[-1] = float(stop)
    return values


def shifted(sigma: float, shift: float) -> float:
    """diffusers' static flow shift, shift s / (1 + (shift - 1) s), in float64."""
    return shift * sigma / (1 + (shift - 1) * sigma)


def stretch_to_terminal(sigmas: list[float], terminal: float) -> list[float]:
    """diffusers' shift_terminal: stretch so that the last sigma equals `terminal` (float64)."""
    scale = (1 - sigmas[-1]) / (1 - terminal)
    return [1 - (1 - s) / scale for s in sigmas]


def _number(config: dict[str, Any], key: str, default: float) -> float:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SchedulerError(f"scheduler config {key} must be a finite number, got {value!r}")
    return float(value)


def _check_supported(config: dict[str, Any]) -> SchedulerKind:
    name = config.get("_class_name")
    allowed = ", ".join(k.value for k in SchedulerKind)
    if name not in {k.value for k in SchedulerKind}:
        raise SchedulerError(f"scheduler {name!r} is not supported; allowed: {allowed}")
    for key, what in UNSUPPORTED.items():
        if config.get(key):
            raise SchedulerError(f"{name} with {key} ({what}) is not supported; WanPipeline's schedulers leave it off")
    return SchedulerKind(name)


def _euler(config: dict[str, Any], steps: int) -> FlowSchedule:
    """FlowMatchEulerDiscreteScheduler: __init__'s float32 training sigmas, then set_timesteps."""
    n_train = int(_number(config, "num_train_timesteps", 1000))
    shift = _number(config, "shift", 1.0)
    s_min = f32(1.0) / f32(n_train)  # the last training sigma, float32 as in torch
    s_min = f32(shift) * s_min / (f32(1.0) + f32(shift - 1) * s_min)
    s_max = f32(shift) * f32(1.0) / (f32(1.0) + f32(shift - 1) * f32(1.0))
    times = linspace(float(s_max) * n_train, float(s_min) * n_train, steps)
    sigmas = [shifted(t / n_train, shift) for t in times]
    if config.get("shift_terminal"):
        sigmas = stretch_to_terminal(sigmas, _number(config, "shift_terminal", 0.0))
    sig32 = [float(f32(s)) for s in sigmas]
    timesteps = tuple(float(f32(s) * f32(n_train)) for s in sig32)
    return FlowSchedule(SchedulerKind.EULER, (*sig32, 0.0), timesteps)


def _unipc(config: dict[str, Any], steps: int) -> FlowSchedule:
    """UniPCMultistepScheduler with use_flow_sigmas and flow_prediction: set_timesteps' flow branch."""
    if config.get("prediction_type") != "flow_prediction" or not config.get("use_flow_sigmas"):
        raise SchedulerError("UniPCMultistepScheduler is supported with prediction_type flow_prediction and "
                             f"use_flow_sigmas true (Wan's), got {config.get('prediction_type')!r} and "
                             f"{config.get('use_flow_sigmas')!r}")
    if not config.get("predict_x0", True):
        raise SchedulerError("UniPCMultistepScheduler with predict_x0 false cannot take flow_prediction")
    order = int(_number(config, "solver_order", 2))
    solver = config.get("solver_type", "bh2")
    solver = "bh2" if solver in ("midpoint", "heun", "logrho") else solver  # diffusers' own mapping
    final = config.get("final_sigmas_type", "zero")
    if not 1 <= order <= 3 or solver not in ("bh1", "bh2") or final not in ("zero", "sigma_min"):
        raise SchedulerError(f"UniPC solver_order {order}, solver_type {solver!r}, final_sigmas_type {final!r}: "
                             "allowed are orders 1 to 3, bh1 or bh2, zero or sigma_min")
    lower_final = bool(config.get("lower_order_final", True))
    if (not lower_final and order > 1) or (final == "zero" and solver == "bh1"):
        raise SchedulerError(f"UniPC with solver_order {order}, lower_order_final {lower_final}, solver_type {solver}, "
                             f"final_sigmas_type {final}: diffusers' last step gives NaN (its log-SNR step is infinite "
                             "or zero); use lower_order_final true, and bh2 with a final sigma of zero")
    n_train = int(_number(config, "num_train_timesteps", 1000))
    shift = _number(config, "flow_shift", 1.0)
    sigmas = [shifted(s, shift) for s in linspace(1.0, 1.0 / n_train, steps + 1)[:-1]]
    if config.get("shift_terminal"):
        sigmas = stretch_to_terminal(sigmas, _number(config, "shift_terminal", 0.0))
    if abs(sigmas[0] - 1) < 1e-6:
        sigmas[0] -= 1e-6
    timesteps = tuple(float(math.trunc(s * n_train)) for s in sigmas)  # float64 -> int64, as diffusers
    last = sigmas[-1] if final == "sigma_min" else 0.0
    disabled = tuple(int(i) for i in config.get("disable_corrector", []) or [])
    return FlowSchedule(SchedulerKind.UNIPC, tuple(float(f32(s)) for s in (*sigmas, last)), timesteps,
                        order, lower_final, solver, disabled)


def flow_schedule(config: dict[str, Any], steps: int) -> FlowSchedule:
    """The schedule of a scheduler_config.json dict for `steps` steps, or a one-line error."""
    if not isinstance(config, dict):
        raise SchedulerError(f"a scheduler config is a JSON object, got {type(config).__name__}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise SchedulerError(f"steps must be an integer >= 1, got {steps!r}")
    kind = _check_supported(config)
    return _euler(config, steps) if kind is SchedulerKind.EULER else _unipc(config, steps)
