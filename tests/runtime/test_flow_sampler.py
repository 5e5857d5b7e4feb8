"""Flow-matching sampler: schedules and steps equal diffusers' schedulers; LPL, CFG, TDTM bookkeeping."""

import math

import numpy as np
import pytest
import torch

from tomobile.graphs.errors import TomobileError
from tomobile.runtime.flow_sampler import (
    FlowSamplerConfig,
    guided,
    portable_expm1,
    predictor_orders,
    sample_flow,
    stepper_for,
)
from tomobile.runtime.flow_schedule import SchedulerError, SchedulerKind, flow_schedule, linspace
from tomobile.runtime.sampler import LeapConfig, LeapMode, SimilarityMode

diffusers = pytest.importorskip("diffusers")

from wan_fixture import EULER, WAN_UNIPC  # noqa: E402

SHIFTS = (1.0, 2.0, 3.0, 5.0, 7.3)
STEP_COUNTS = (1, 2, 3, 4, 10, 30, 50)


def config(kind: str, shift: float, **extra) -> dict:
    base = EULER if kind == "euler" else WAN_UNIPC
    return {**base, ("shift" if kind == "euler" else "flow_shift"): shift, **extra}


def diffusers_scheduler(cfg: dict, steps: int):
    cls = getattr(diffusers, cfg["_class_name"])
    sched = cls.from_config({k: v for k, v in cfg.items() if not k.startswith("_")})
    sched.set_timesteps(steps)
    sched.set_begin_index(0)
    return sched


@pytest.mark.parametrize("kind", ["euler", "unipc"])
@pytest.mark.parametrize("shift", SHIFTS)
@pytest.mark.parametrize("steps", STEP_COUNTS)
def test_schedule_equals_diffusers_to_the_bit(kind, shift, steps):
    cfg = config(kind, shift)
    ours, ref = flow_schedule(cfg, steps), diffusers_scheduler(cfg, steps)
    assert ours.kind is SchedulerKind(cfg["_class_name"]) and ours.steps == steps
    np.testing.assert_array_equal(np.array(ours.sigmas, np.float32), ref.sigmas.numpy())
    np.testing.assert_array_equal(np.array(ours.timesteps, np.float64), ref.timesteps.numpy().astype(np.float64))


def step_by_step(cfg: dict, steps: int, seed: int = 0) -> list[float]:
    """Both solvers fed the same (x_i, v_i) at every step (x_i = diffusers' previous output); the
    difference of each step's output relative to its largest value."""
    ref, ours = diffusers_scheduler(cfg, steps), stepper_for(flow_schedule(cfg, steps))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, 4, 3, 6, 8)).astype(np.float32)
    errors = []
    for i in range(steps):
        v = (0.6 * x + rng.standard_normal(x.shape)).astype(np.float32)  # a velocity that depends on x
        mine = ours.step(i, x.copy(), v)
        x = ref.step(torch.from_numpy(v), ref.timesteps[i], torch.from_numpy(x), return_dict=False)[0].numpy()
        assert mine.dtype == np.float32 and np.all(np.isfinite(x))
        errors.append(float(np.abs(mine - x).max() / np.abs(x).max()))
    return errors


@pytest.mark.parametrize("shift", SHIFTS)
@pytest.mark.parametrize("steps", STEP_COUNTS)
def test_euler_steps_equal_diffusers_exactly(shift, steps):
    assert step_by_step(config("euler", shift), steps) == [0.0] * steps


@pytest.mark.parametrize("shift", SHIFTS)
@pytest.mark.parametrize("steps", STEP_COUNTS)
def test_unipc_steps_equal_diffusers_to_float32_rounding(shift, steps):
    # Measured: at most 8.9e-7 of the largest value (a few float32 ulps) over these cases.
    assert max(step_by_step(config("unipc", shift), steps)) < 2e-6


@pytest.mark.parametrize("extra", [
    {"solver_order": 1}, {"solver_order": 3}, {"disable_corrector": [0, 2, 5]},
    {"final_sigmas_type": "sigma_min"}, {"solver_type": "bh1", "final_sigmas_type": "sigma_min"},
])
def test_unipc_variants_equal_diffusers(extra):
    assert max(step_by_step(config("unipc", 3.0, **extra), 12, seed=3)) < 2e-6


def test_unipc_orders_warm_up_and_lower_at_the_end():
    assert predictor_orders(flow_schedule(WAN_UNIPC, 5)) == [1, 2, 2, 2, 1]
    assert predictor_orders(flow_schedule({**WAN_UNIPC, "solver_order": 3}, 6)) == [1, 2, 3, 3, 2, 1]


@pytest.mark.parametrize("cfg, words", [
    ({"_class_name": "DDIMScheduler"}, "allowed: FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler"),
    ({**EULER, "use_karras_sigmas": True}, "Karras"),
    ({**EULER, "use_dynamic_shifting": True}, "mu"),
    ({**EULER, "stochastic_sampling": True}, "stochastic"),
    ({**WAN_UNIPC, "prediction_type": "epsilon"}, "flow_prediction"),
    ({**WAN_UNIPC, "lower_order_final": False}, "NaN"),
    ({**WAN_UNIPC, "solver_type": "bh1"}, "NaN"),
    ({**WAN_UNIPC, "lower_order_final": False, "final_sigmas_type": "sigma_min"}, "NaN"),
    ({**WAN_UNIPC, "solver_order": 4}, "orders 1 to 3"),
    ({**EULER, "shift": "3"}, "finite number"),
])
def test_other_schedulers_and_settings_are_refused_in_one_line(cfg, words):
    with pytest.raises(SchedulerError) as err:
        flow_schedule(cfg, 10)
    assert isinstance(err.value, TomobileError) and words in str(err.value) and "\n" not in str(err.value)


def test_linspace_is_numpys_to_the_bit():
    for start, stop, num in [(1.0, 0.001, 51), (999.0, 2.997, 7), (1000.0, 1.0, 1), (0.3, 0.7, 2)]:
        np.testing.assert_array_equal(np.array(linspace(start, stop, num)), np.linspace(start, stop, num))


def test_portable_expm1_matches_the_math_library():
    xs = np.concatenate([-np.geomspace(1e-12, 60, 4000), np.geomspace(1e-12, 5, 500), [0.0]])
    for x in xs:  # within 2 float64 ulps (measured 3.7e-16 relative at most), equal once rounded to float32
        ref = math.expm1(x)
        assert abs(portable_expm1(float(x)) - ref) <= 5e-16 * abs(ref)
        assert np.float32(portable_expm1(float(x))) == np.float32(ref)
    assert portable_expm1(-math.inf) == -1.0


def point_mass(x0: np.ndarray, schedule):
    """The exact flow velocity for data concentrated at x0, v = (x - x0) / sigma, given the timestep."""
    sigma_at = dict(zip(schedule.timesteps, schedule.sigmas))
    return lambda x, t, merged: ((x - x0) / np.float32(sigma_at[t])).astype(np.float32)


@pytest.mark.parametrize("kind", ["euler", "unipc"])
@pytest.mark.parametrize("lpl", ["off", "4", "auto"])
def test_straight_paths_reach_the_data(kind, lpl):
    x0 = np.random.default_rng(0).standard_normal((1, 3, 3, 4, 4)).astype(np.float32)
    noise = np.random.default_rng(1).standard_normal(x0.shape).astype(np.float32)
    cfg = FlowSamplerConfig(flow_schedule(config(kind, 3.0), 12), leap=LeapConfig.parse(lpl, SimilarityMode.FULL))
    res = sample_flow(point_mass(x0, cfg.schedule), noise, cfg)
    np.testing.assert_allclose(res.x, x0, atol=2e-5)


@pytest.mark.parametrize("kind", ["euler", "unipc"])
def test_fixed_leap_jumps_over_the_remaining_sigma(kind):
    schedule = flow_schedule(config(kind, 3.0), 10)
    seen = []

    def velocity(x, t, merged):
        v = np.sin(x + np.float32(t / 1000)).astype(np.float32)
        seen.append((x, v))
        return v

    res = sample_flow(velocity, np.ones((1, 2, 3, 2, 2), np.float32), FlowSamplerConfig(schedule, leap=LeapConfig.parse("4")))
    x4, v4 = seen[-1]
    assert res.calls == 5 and res.leap_at == 4
    np.testing.assert_array_equal(res.x, x4 - v4 * np.float32(schedule.sigmas[4]))


def test_unipc_last_step_is_the_leap_formula():
    # The documented choice: UniPC's own last step (to sigma 0) returns the flow data estimate
    # x - sigma v of the sample the transformer saw; LPL applies the same formula earlier.
    schedule = flow_schedule(WAN_UNIPC, 8)
    seen = []

    def velocity(x, t, merged):
        v = (0.3 * x + np.cos(x)).astype(np.float32)
        seen.append((x, v))
        return v

    res = sample_flow(velocity, np.linspace(-2, 2, 48, dtype=np.float32).reshape(1, 2, 3, 2, 4),
                      FlowSamplerConfig(schedule))
    x_last, v_last = seen[-1]
    np.testing.assert_array_equal(res.x, x_last - v_last * np.float32(schedule.sigmas[-2]))


def test_auto_leap_is_on_device_soras_rule():
    # A constant velocity: similarity 1 from the first comparison; step 14 of 30 sets the best,
    # steps 15, 16, 17 spend the patience of 3: leap at 17 after 18 calls, as video-dit-tiny's sampler.
    schedule = flow_schedule(WAN_UNIPC, 30)
    cfg = FlowSamplerConfig(schedule, leap=LeapConfig(mode=LeapMode.AUTO, similarity=SimilarityMode.FULL))
    res = sample_flow(lambda x, t, m: np.ones((1, 4), np.float32), np.zeros((1, 4), np.float32), cfg)
    assert res.leap_at == 17 and res.calls == 18


def test_tdtm_steps_run_merged_first():
    merged = []
    cfg = FlowSamplerConfig(flow_schedule(EULER, 6), tdtm_steps=2)
    sample_flow(lambda x, t, m: merged.append(m) or np.zeros_like(x), np.zeros((1, 2), np.float32), cfg)
    assert merged == [True, True, False, False, False, False]


@pytest.mark.parametrize("kwargs, words", [
    ({"leap": LeapConfig.parse("9")}, "1 <= N <= 8"), ({"tdtm_steps": 11}, "0..10"), ({"guidance": math.nan}, "finite"),
])
def test_bad_sampler_settings_are_one_line_errors(kwargs, words):
    with pytest.raises(TomobileError, match=words):
        FlowSamplerConfig(flow_schedule(EULER, 10), **kwargs)


def test_guidance_is_wanpipelines():
    rng = np.random.default_rng(0)
    cond, uncond = rng.standard_normal((1, 4, 8)).astype(np.float32), rng.standard_normal((1, 4, 8)).astype(np.float32)
    calls = []

    def denoise(x, t, states, merged):
        calls.append(states is cond)
        return (x * states.sum() + t).astype(np.float32)

    x = rng.standard_normal((1, 2, 3, 4, 4)).astype(np.float32)
    v = guided(denoise, cond, uncond, 5.1)(x, 981.0, False)
    vc, vu = torch.from_numpy(denoise(x, 981.0, cond, False)), torch.from_numpy(denoise(x, 981.0, uncond, False))
    np.testing.assert_array_equal(v, (vu + 5.1 * (vc - vu)).numpy())  # WanPipeline's expression in torch
    assert calls[:2] == [True, False]
    calls.clear()
    np.testing.assert_array_equal(guided(denoise, cond, None, 1.0)(x, 981.0, False), denoise(x, 981.0, cond, False))
    assert calls == [True, True]  # guidance <= 1: the conditional call alone (then the reference call above)
