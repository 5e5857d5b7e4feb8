// tomobile's portable standard-normal generator (docs/contract.md, "The generator"): the same
// float64 normals, to the bit, as runtime/noise.py, from IEEE-754 + - * / and sqrt only.
// Mirrors: Kotlin Noise.kt, Swift Noise.swift (same names, same order).

const MASK64 = (1n << 64n) - 1n;
const GAMMA = 0x9E3779B97F4A7C15n;
const MIX1 = 0xBF58476D1CE4E5B9n;
const MIX2 = 0x94D049BB133111EBn;
const SQRT2 = 1.4142135623730951;
const LN2 = 0.6931471805599453;
const LN_TERMS = 40;
const TWO_POW_MINUS_53 = 2 ** -53;

/** A seed as an unsigned 64-bit BigInt: from a BigInt, a safe integer Number or a decimal string. */
export function parseSeed(seed) {
  let value;
  if (typeof seed === "bigint") value = seed;
  else if (typeof seed === "number" && Number.isSafeInteger(seed)) value = BigInt(seed);
  else if (typeof seed === "string" && /^[0-9]+$/.test(seed.trim())) value = BigInt(seed.trim());
  else throw new RangeError(`seed must be an integer in 0..2^64-1, got ${String(seed)}`);
  if (value < 0n || value > MASK64) throw new RangeError(`seed must be in 0..2^64-1, got ${value}`);
  return value;
}

/** One SplitMix64 step: [next state, output], all mod 2^64. */
export function splitMix64(state) {
  const next = (state + GAMMA) & MASK64;
  let z = next;
  z = ((z ^ (z >> 30n)) * MIX1) & MASK64;
  z = ((z ^ (z >> 27n)) * MIX2) & MASK64;
  return [next, z ^ (z >> 31n)];
}

const scratch = new DataView(new ArrayBuffer(8));

/** ln(s) for a positive normal double s, from + - * / only (the contract's evaluation order). */
export function portableLog(s) {
  scratch.setFloat64(0, s);
  const hi = scratch.getUint32(0);
  let e = ((hi >>> 20) & 0x7ff) - 1023;
  scratch.setUint32(0, (hi & 0x000fffff) | (1023 << 20)); // exponent bits -> 1023: m in [1, 2)
  let m = scratch.getFloat64(0);
  if (m > SQRT2) {
    m = m / 2;
    e = e + 1;
  }
  const z = (m - 1) / (m + 1);
  const z2 = z * z;
  let acc = 0.0;
  let t = z;
  for (let k = 0; k < LN_TERMS; k++) {
    acc = acc + t / (2 * k + 1);
    t = t * z2;
  }
  return 2.0 * acc + e * LN2;
}

/** The stream of one seed: SplitMix64 -> uniforms in [0, 1) -> Marsaglia polar normals. */
export class PortableRandom {
  constructor(seed) {
    this.state = parseSeed(seed);
    this.spare = null; // the second normal of a polar pair, emitted next
  }

  nextU64() {
    const [state, out] = splitMix64(this.state);
    this.state = state;
    return out;
  }

  /** (next() >> 11) * 2^-53: the top 53 bits, exactly representable. */
  nextUniform() {
    return Number(this.nextU64() >> 11n) * TWO_POW_MINUS_53;
  }

  nextNormal() {
    if (this.spare !== null) {
      const y = this.spare;
      this.spare = null;
      return y;
    }
    for (;;) {
      const x = 2 * this.nextUniform() - 1;
      const y = 2 * this.nextUniform() - 1;
      const s = x * x + y * y;
      if (s === 0 || s >= 1) continue;
      const f = Math.sqrt((-2 * portableLog(s)) / s);
      this.spare = y * f;
      return x * f;
    }
  }
}

/** The first `count` float64 normals of the stream for `seed`. */
export function standardNormals(seed, count) {
  const rng = new PortableRandom(seed);
  const out = new Float64Array(count);
  for (let i = 0; i < count; i++) out[i] = rng.nextNormal();
  return out;
}

/** Initial latent for `seed` and `shape` (e.g. [1, 3, 8, 32, 32]): normals in C order, rounded to float32. */
export function latentNoise(shape, seed) {
  const count = shape.reduce((a, b) => a * b, 1);
  return Float32Array.from(standardNormals(seed, count)); // round to nearest even, as numpy's astype
}
