"""Rectified-flow Euler sampler: schedule, exactness on straight paths, LPL and TDTM bookkeeping."""

import numpy as np
import pytest

from tomobile.runtime.sampler import (
    LeapConfig,
    LeapMode,
    SamplerConfig,
    SimilarityMode,
    TimestepMode,
    sample,
    shift_time,
    timesteps,
)

FULL = SimilarityMode.FULL  # toy velocities below are not (B, C, T, H, W)


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
    x0 = np.random.default_rng(0).standard_normal((1, 3, 2, 4, 4)).astype(np.float32)
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
    cfg = SamplerConfig(steps=30, leap=LeapConfig(mode=LeapMode.AUTO, similarity=FULL))
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
    res = sample(velocity, np.zeros(2, np.float32), SamplerConfig(steps=30, leap=LeapConfig(mode=LeapMode.AUTO, similarity=FULL)))
    assert res.similarities[13:17] == pytest.approx([0.5, 0.4, 0.45, 0.6])
    assert res.leap_at == 20


def test_auto_leap_does_not_fire_while_similarity_keeps_rising():
    rng = np.random.default_rng(0)
    base, noise = rng.standard_normal(64), rng.standard_normal(64)
    calls = []

    def velocity(x, t, merged):  # noise share shrinks fast: similarity rises by > tolerance each step
        calls.append(t)
        return base + noise * 4.0 * 0.8 ** len(calls)

    res = sample(velocity, np.zeros(64, np.float32), SamplerConfig(steps=20, leap=LeapConfig(mode=LeapMode.AUTO, tolerance=1e-6, similarity=FULL)))
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
    with pytest.raises(ValueError, match="bad leap value"):
        LeapConfig.parse(text)


@pytest.mark.parametrize("n", [9, 10, 11])
def test_leap_must_come_before_the_last_step(n):
    # A leap after 9 of 10 steps is the plain last step: refused, not run as "no leap".
    with pytest.raises(ValueError, match=r"a leap after N steps needs 1 <= N <= 8 for 10 steps"):
        SamplerConfig(steps=10, leap=LeapConfig.parse(str(n)))
    assert SamplerConfig(steps=10, leap=LeapConfig.parse("8")).leap.step == 8


@pytest.mark.parametrize("kwargs,needle", [
    (dict(tdtm_steps=11), "must be 0..10"), (dict(tdtm_steps=-1), "must be 0..10"),
    (dict(guidance=float("nan")), "finite"), (dict(guidance=float("inf")), "finite"),
])
def test_sampler_config_refuses_what_it_would_clamp_or_ruin(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        SamplerConfig(steps=10, **kwargs)


# Open-Sora RFLOW with use_discrete_timesteps=True: int(round((1 - i/N) * 1000)) before the shift.
DISCRETE_30 = [1000, 967, 933, 900, 867, 833, 800, 767, 733, 700, 667, 633, 600, 567, 533, 500, 467, 433, 400,
               367, 333, 300, 267, 233, 200, 167, 133, 100, 67, 33]
# N = 16 has exact halves (937.5, 812.5, ...): Python's round takes them to the even neighbour.
DISCRETE_16 = [1000, 938, 875, 812, 750, 688, 625, 562, 500, 438, 375, 312, 250, 188, 125, 62]


@pytest.mark.parametrize("steps,ints", [(30, DISCRETE_30), (16, DISCRETE_16)])
@pytest.mark.parametrize("ratio", [1.0, 2.0])
def test_discrete_timesteps_are_open_soras(steps, ints, ratio):
    expected = [ratio * (k / 1000) / (1 + (ratio - 1) * (k / 1000)) for k in ints] + [0.0]
    assert timesteps(steps, ratio) == expected  # discrete is the default
    assert SamplerConfig(steps=steps).timesteps is TimestepMode.DISCRETE


def test_continuous_timesteps_stay_selectable():
    assert timesteps(16, 1.0, TimestepMode.CONTINUOUS)[1] == 0.9375
    assert timesteps(16, 1.0, "discrete")[1] == 0.938


def test_discrete_timesteps_refuse_more_than_1000_steps():
    with pytest.raises(ValueError, match="at most 1000"):
        SamplerConfig(steps=1001)
    assert len(timesteps(1001, 1.0, TimestepMode.CONTINUOUS)) == 1002


def _original_leap_step(velocities: list[np.ndarray], min_steps: int = 14, tol: float = 1e-3, patience: int = 3):
    """On-device Sora's RFLOW rule as its code states it: from step `min_steps` on,
    cos = cosine_similarity(v[0,0,0], prev[0,0,0], dim=1).mean(); a gain over best + tol resets the
    patience, anything else spends one; the step that spends the last one leaps."""
    import torch

    best, left, prev = 0.0, patience, None
    for i, v in enumerate(velocities):
        if prev is not None:
            if i >= min_steps:
                cur = torch.from_numpy(v[0, 0, 0].astype(np.float64))
                old = torch.from_numpy(prev[0, 0, 0].astype(np.float64))
                cos = float(torch.nn.functional.cosine_similarity(cur, old, dim=1).mean())
                if cos > best + tol:
                    best, left = cos, patience
                else:
                    left -= 1
            if left == 0:
                return i
        prev = v
    return None


def _synthetic_velocities(seed: int, steps: int = 30, shape=(1, 3, 2, 6, 5)) -> list[np.ndarray]:
    """A base field plus a shrinking random part whose shrink rate varies per seed, so the
    similarity of consecutive velocities rises, flattens and jitters around the tolerance."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal(shape)
    rate = rng.uniform(0.6, 0.95)
    return [(base + rng.standard_normal(shape) * 2.0 * rate**i).astype(np.float32) for i in range(steps)]


def _leap_of(velocities: list[np.ndarray], similarity: SimilarityMode) -> int | None:
    it = iter(velocities)
    cfg = SamplerConfig(steps=len(velocities), leap=LeapConfig(mode=LeapMode.AUTO, similarity=similarity))
    return sample(lambda x, t, m: next(it), np.zeros(velocities[0].shape, np.float32), cfg).leap_at


def test_default_auto_leap_matches_on_device_soras_rule_on_every_sequence():
    leaps = []
    for seed in range(40):
        vs = _synthetic_velocities(seed)
        expected = _original_leap_step(vs)
        got = _leap_of(vs, SimilarityMode.ORIGINAL)
        assert got == (expected if expected is not None and expected < len(vs) - 1 else None), seed
        leaps.append(got)
    assert len(set(leaps)) > 3  # the sequences exercise different leap steps


def test_row_mean_and_whole_tensor_similarity_leap_at_different_steps():
    # The plane [0, 0, 0] is constant (row cosines 1: leaps at step 17). Channel 1, 30x larger,
    # turns between two orthogonal fields by an angle whose cosine gains 0.003 a step from step 14
    # on, so the whole-tensor cosine keeps beating its best and never leaps.
    rng = np.random.default_rng(0)
    plane = rng.standard_normal((4, 4))
    a, b = np.linalg.qr(rng.standard_normal((16, 2)))[0].T * 30  # orthogonal, equal norms
    angle, vs = 0.0, []
    for i in range(30):
        if i:
            angle += np.arccos(0.9 if i < 14 else 0.95 + 0.003 * (i - 14))
        v = np.zeros((1, 2, 1, 4, 4))
        v[0, 0, 0] = plane
        v[0, 1, 0] = (np.cos(angle) * a + np.sin(angle) * b).reshape(4, 4)
        vs.append(v.astype(np.float32))
    original, full = _leap_of(vs, SimilarityMode.ORIGINAL), _leap_of(vs, SimilarityMode.FULL)
    assert original == _original_leap_step(vs) == 17
    assert full is None


def test_original_similarity_needs_a_video_shaped_velocity():
    cfg = SamplerConfig(steps=30, leap=LeapConfig(mode=LeapMode.AUTO))
    with pytest.raises(ValueError, match=r"\(B, C, T, H, W\)"):
        sample(lambda x, t, m: np.ones((1, 4), np.float32), np.zeros((1, 4), np.float32), cfg)


@pytest.mark.parametrize("value", ["row", "", "ORIGINAL"])
def test_bad_similarity_mode_is_a_one_line_error(value):
    with pytest.raises(ValueError, match="allowed: original, full"):
        LeapConfig.parse("auto", value)
