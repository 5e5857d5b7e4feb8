"""Rectified-flow Euler sampler: schedule, exactness on straight paths, LPL and TDTM bookkeeping."""

import numpy as np
import pytest

from tomobile.runtime.sampler import LeapConfig, LeapMode, SamplerConfig, sample, shift_time, timesteps


def point_mass_velocity(x0):
    """Exact velocity for data concentrated at x0: v = (x - x0) / t (straight paths)."""
    return lambda x, t, merged: (x - x0) / t


def test_timesteps_run_from_one_to_zero_and_shift_toward_noise():
    ts = timesteps(30, 2.0)
    assert ts[0] == pytest.approx(1.0) and ts[-1] == 0.0 and len(ts) == 31
    assert all(a > b for a, b in zip(ts, ts[1:]))
    plain = timesteps(30, 1.0)
    assert all(s >= p for s, p in zip(ts, plain))
    assert shift_time(0.5, 1.0) == 0.5


@pytest.mark.parametrize("lpl", ["off", "5", "auto"])
def test_straight_path_reaches_data_exactly(lpl):
    x0 = np.random.default_rng(0).standard_normal((1, 3, 4, 4)).astype(np.float32)
    noise = np.random.default_rng(1).standard_normal(x0.shape).astype(np.float32)
    res = sample(point_mass_velocity(x0), noise, SamplerConfig(steps=10, leap=LeapConfig.parse(lpl)))
    np.testing.assert_allclose(res.x, x0, atol=1e-4)


def test_fixed_leap_after_n_steps_uses_n_plus_one_calls():
    x0 = np.zeros((1, 2), np.float32)
    res = sample(point_mass_velocity(x0), np.ones((1, 2), np.float32), SamplerConfig(steps=30, leap=LeapConfig.parse("15")))
    assert res.calls == 16 and res.leap_at == 15


def test_auto_leap_waits_for_min_steps_then_patience():
    # Constant velocity: similarity 1 every step. At step 14 (On-device Sora's minimum) 1 beats the
    # initial best of 0 and becomes the best; steps 15, 16, 17 bring no gain and spend the patience
    # of 3, so it leaps at step 17 with 18 calls.
    v = np.ones((1, 4), np.float32)
    cfg = SamplerConfig(steps=30, leap=LeapConfig(mode=LeapMode.AUTO))
    res = sample(lambda x, t, m: v, np.zeros((1, 4), np.float32), cfg)
    assert res.leap_at == 17 and res.calls == 18
    assert all(s == pytest.approx(1.0) for s in res.similarities)


def test_auto_leap_patience_refills_on_a_gain_over_the_best():
    # Similarities (from step 14 on): 0.5 best, 0.4, 0.45 (no gain over 0.5), 0.6 new best (refill),
    # then flat: leaps three steps after the new best.
    sims = iter([0.5, 0.4, 0.45, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6])
    calls = []

    def velocity(x, t, merged):
        calls.append(t)
        if len(calls) <= 14:
            return np.array([1.0, 0.0])
        c = next(sims)  # unit vector at angle acos(c) from the previous one
        prev = velocity.last
        angle = np.arctan2(prev[1], prev[0]) + np.arccos(c)
        velocity.last = np.array([np.cos(angle), np.sin(angle)])
        return velocity.last

    velocity.last = np.array([1.0, 0.0])
    res = sample(velocity, np.zeros(2, np.float32), SamplerConfig(steps=30, leap=LeapConfig(mode=LeapMode.AUTO)))
    assert res.similarities[13:17] == pytest.approx([0.5, 0.4, 0.45, 0.6])
    assert res.leap_at == 20


def test_auto_leap_does_not_fire_while_similarity_keeps_rising():
    rng = np.random.default_rng(0)
    base, noise = rng.standard_normal(64), rng.standard_normal(64)
    calls = []

    def velocity(x, t, merged):  # noise share shrinks fast: similarity rises by > tolerance each step
        calls.append(t)
        return base + noise * 4.0 * 0.8 ** len(calls)

    res = sample(velocity, np.zeros(64, np.float32), SamplerConfig(steps=20, leap=LeapConfig(mode=LeapMode.AUTO, tolerance=1e-6)))
    assert res.leap_at is None or res.leap_at > 10
    assert res.calls == len(calls)


@pytest.mark.parametrize("k,lpl,expected", [(0, "off", 0), (15, "off", 15), (30, "off", 30), (15, "15", 15), (30, "15", 16)])
def test_tdtm_steps_choose_merged_calls(k, lpl, expected):
    seen = []
    cfg = SamplerConfig(steps=30, tdtm_steps=k, leap=LeapConfig.parse(lpl))
    res = sample(lambda x, t, m: seen.append(m) or x * 0, np.zeros(3, np.float32), cfg)
    assert res.merged_calls == expected == sum(seen)
    assert seen[: min(k, len(seen))] == [True] * min(k, len(seen))


@pytest.mark.parametrize("text", ["0", "-1", "fast", "1.5"])
def test_bad_lpl_values_raise(text):
    with pytest.raises(ValueError, match="lpl"):
        LeapConfig.parse(text)


@pytest.mark.parametrize("n", [9, 10, 11])
def test_leap_must_come_before_the_last_step(n):
    # A leap after 9 of 10 steps is the plain last step: refused, not run as "no leap".
    with pytest.raises(ValueError, match=r"--lpl N\) needs 1 <= N <= 8 for 10 steps"):
        SamplerConfig(steps=10, leap=LeapConfig.parse(str(n)))
    assert SamplerConfig(steps=10, leap=LeapConfig.parse("8")).leap.step == 8


@pytest.mark.parametrize("kwargs,needle", [
    (dict(tdtm_steps=11), "must be 0..10"), (dict(tdtm_steps=-1), "must be 0..10"),
    (dict(guidance=float("nan")), "finite"), (dict(guidance=float("inf")), "finite"),
])
def test_sampler_config_refuses_what_it_would_clamp_or_ruin(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        SamplerConfig(steps=10, **kwargs)
