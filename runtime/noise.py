"""tomobile's portable standard-normal generator: the same noise, to the bit, on every platform.

Python's `math.log` and JavaScript's `Math.log` disagree in the last bit for about 7% of inputs,
so neither numpy's generator nor a Box-Muller on a platform's math library gives the same noise
in Python, JavaScript, Kotlin and Swift. This generator uses only IEEE-754 double +, -, *, / and
sqrt, which every platform rounds the same way:

    SplitMix64 (uint64, state = seed):  state += 0x9E3779B97F4A7C15; z = state;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9; z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
        return z ^ (z >> 31)                                   (all mod 2^64)
    uniform u = (next() >> 11) * 2^-53                         in [0, 1)
    Marsaglia polar: x = 2 u1 - 1; y = 2 u2 - 1; s = x x + y y; retry while s == 0 or s >= 1;
        f = sqrt(-2 ln(s) / s); emit x f, then y f
    ln(s), s in (0, 1): e = unbiased exponent of s, m = s with biased exponent 1023 (m in [1, 2));
        if m > 1.4142135623730951: m = m / 2, e = e + 1
        z = (m - 1) / (m + 1); z2 = z z; acc = 0; t = z
        for k = 0..39: acc = acc + t / (2k + 1); t = t z2
        ln = 2 acc + e * 0.6931471805599453

A latent (1, C, T, H, W) is filled in C order with float64 normals, then rounded to float32.
The n-th SplitMix64 output depends only on seed + n * gamma, so the stream is computed here in
vectorised numpy; every elementwise float64 op is correctly rounded, as in the scalar form above.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from ..graphs.errors import InputError

GAMMA = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB
SQRT2 = 1.4142135623730951
LN2 = 0.6931471805599453
LN_TERMS = 40
_MASK64 = (1 << 64) - 1


def splitmix64(seed: int, count: int, start: int = 0) -> np.ndarray:
    """Outputs start..start+count-1 of SplitMix64 seeded with `seed` (uint64)."""
    n = np.arange(start + 1, start + count + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = np.uint64(seed & _MASK64) + n * np.uint64(GAMMA)  # state after n increments, mod 2^64
        z = (z ^ (z >> np.uint64(30))) * np.uint64(MIX1)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(MIX2)
    return z ^ (z >> np.uint64(31))


def uniforms(seed: int, count: int, start: int = 0) -> np.ndarray:
    """Doubles in [0, 1): the top 53 bits of each SplitMix64 output times 2^-53."""
    return (splitmix64(seed, count, start) >> np.uint64(11)).astype(np.float64) * 2.0**-53


def portable_log(s: np.ndarray | float) -> np.ndarray:
    """Natural log of s in (0, 1) (any positive normal double) from +, -, *, / only (see module doc)."""
    s = np.asarray(s, dtype=np.float64)
    bits = s.view(np.uint64)
    e = ((bits >> np.uint64(52)) & np.uint64(0x7FF)).astype(np.int64) - 1023
    m = ((bits & np.uint64(0x000FFFFFFFFFFFFF)) | np.uint64(1023 << 52)).view(np.float64)
    big = m > SQRT2
    m = np.where(big, m / 2.0, m)
    e = e + big
    z = (m - 1.0) / (m + 1.0)
    z2 = z * z
    acc = np.zeros_like(z)
    t = z
    for k in range(LN_TERMS):
        acc = acc + t / float(2 * k + 1)
        t = t * z2
    return 2.0 * acc + e.astype(np.float64) * LN2


def standard_normals(seed: int, count: int) -> np.ndarray:
    """The first `count` float64 normals of the stream for `seed`."""
    out: list[np.ndarray] = []
    have, pairs_used = 0, 0
    while have < count:
        need = (count - have + 1) // 2
        batch = max(16, int(need * 1.3) + 8)  # acceptance rate is pi/4
        u = uniforms(seed, 2 * batch, start=2 * pairs_used).reshape(batch, 2)
        x, y = 2.0 * u[:, 0] - 1.0, 2.0 * u[:, 1] - 1.0
        s = x * x + y * y
        ok = (s != 0.0) & (s < 1.0)
        x, y, s = x[ok], y[ok], s[ok]
        f = np.sqrt(-2.0 * portable_log(s) / s)
        out.append(np.stack([x * f, y * f], axis=1).reshape(-1))
        have += 2 * int(ok.sum())
        pairs_used += batch
    return np.concatenate(out)[:count]


@functools.lru_cache(maxsize=8)
def _latent(shape: tuple[int, ...], seed: int) -> np.ndarray:
    values = standard_normals(seed, math.prod(shape)).reshape(shape).astype(np.float32)
    values.setflags(write=False)
    return values


def latent_noise(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Initial noise (e.g. (1, C, T, H, W)) for `seed`: float64 normals in C order, rounded to float32.
    Returns a fresh, writable array (the computed one is cached per shape and seed)."""
    if seed < 0 or seed > _MASK64:
        raise InputError(f"seed must be in 0..2^64-1, got {seed}")
    return _latent(tuple(int(d) for d in shape), int(seed)).copy()
