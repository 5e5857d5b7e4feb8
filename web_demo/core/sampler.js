// The rectified-flow Euler sampler with LPL and TDTM, bit for bit as runtime/sampler.py
// (docs/contract.md, "The sampler"). No DOM: runs in the page and in node's tests.
// Mirrors: Kotlin Sampler.kt, Swift Sampler.swift.

const fround = Math.fround;

// On-device Sora's RFLOW: minimum_steps = 14 for its 30-step sampling; Open-Sora's 1000 train steps.
const AUTO_MIN_STEPS = 14;
const AUTO_REFERENCE_STEPS = 30;
const NUM_TIMESTEPS = 1000;
const COSINE_EPS = 1e-8;

/** Python's round() on a double: to nearest, ties to even. */
export function roundHalfEven(v) {
  const f = Math.floor(v);
  const diff = v - f; // exact for |v| < 2^52
  if (diff > 0.5) return f + 1;
  if (diff < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** Open-Sora's timestep transform: ratio t / (1 + (ratio - 1) t). */
export function shiftTime(t, ratio) {
  return (ratio * t) / (1 + (ratio - 1) * t);
}

/** steps + 1 float64 times from 1 down to 0 (mode "discrete" or "continuous"). */
export function timesteps(steps, shift, mode = "discrete") {
  if (mode !== "discrete" && mode !== "continuous") throw new RangeError(`timesteps mode must be discrete or continuous, got ${mode}`);
  if (mode === "discrete" && steps > NUM_TIMESTEPS) throw new RangeError(`discrete timesteps allow at most ${NUM_TIMESTEPS} steps, got ${steps}`);
  const times = [];
  for (let i = 0; i < steps; i++) {
    let u = 1.0 - i / steps;
    if (mode === "discrete") u = roundHalfEven(u * NUM_TIMESTEPS) / NUM_TIMESTEPS;
    times.push(shiftTime(u, shift));
  }
  times.push(0.0);
  return times;
}

/** Auto LPL's first step that may leap: 14 of 30, in proportion for other counts. */
export function defaultMinSteps(steps) {
  return Math.max(1, roundHalfEven((steps * AUTO_MIN_STEPS) / AUTO_REFERENCE_STEPS));
}

/** Cosine per row of `rows` x `cols` values starting at offset 0 of a and b: float64, sums in index order. */
export function cosineRows(a, b, rows, cols) {
  const out = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let ab = 0.0;
    let aa = 0.0;
    let bb = 0.0;
    for (let k = r * cols; k < (r + 1) * cols; k++) {
      ab += a[k] * b[k];
      aa += a[k] * a[k];
      bb += b[k] * b[k];
    }
    out[r] = ab / (Math.max(Math.sqrt(aa), COSINE_EPS) * Math.max(Math.sqrt(bb), COSINE_EPS));
  }
  return out;
}

/** LPL's similarity of consecutive velocities of `shape` (1, C, T, H, W): "original" or "full". */
export function velocitySimilarity(prev, cur, shape, mode = "original") {
  if (mode === "full") return cosineRows(prev, cur, 1, cur.length)[0];
  if (mode !== "original") throw new RangeError(`LPL similarity must be original or full, got ${mode}`);
  const [height, width] = shape.slice(-2);
  const rows = cosineRows(prev, cur, height, width); // the plane [0, 0, 0]: the first H * W values
  let sum = 0.0;
  for (let r = 0; r < height; r++) sum += rows[r];
  return sum / height;
}

/** On-device Sora's dynamic leap: leap once the similarity stops beating its best by `tolerance` for `patience` steps. */
export class AutoLeap {
  constructor({ steps, shape, minSteps = null, tolerance = 1e-3, patience = 3, similarity = "original" }) {
    this.minSteps = minSteps ?? defaultMinSteps(steps);
    this.shape = shape;
    this.tolerance = tolerance;
    this.patience = patience;
    this.similarity = similarity;
    this.prev = null;
    this.best = 0.0;
    this.left = patience;
    this.similarities = [];
  }

  shouldLeap(step, v) {
    const prev = this.prev;
    this.prev = v;
    if (prev === null) return false;
    return this.observe(step, velocitySimilarity(prev, v, this.shape, this.similarity));
  }

  /** The rule on its own: record `step`'s similarity to the previous velocity; true = leap now. */
  observe(step, similarity) {
    this.similarities.push(similarity);
    if (step < this.minSteps) return false;
    if (similarity > this.best + this.tolerance) {
      this.best = similarity;
      this.left = this.patience;
      return false;
    }
    this.left -= 1;
    return this.left <= 0;
  }
}

export function variantName(merged, spatial) {
  return "denoiser" + (merged ? "_tdtm" : "") + (spatial ? "_tome" : "");
}

/** "off" | "auto" | "N" -> {mode, step}; anything else is an error naming the allowed values. */
export function parseLpl(text) {
  const value = String(text).trim().toLowerCase();
  if (value === "off" || value === "auto") return { mode: value, step: null };
  if (/^[0-9]+$/.test(value) && Number(value) >= 1) return { mode: "fixed", step: Number(value) };
  throw new RangeError(`bad LPL value ${JSON.stringify(text)}; allowed: off, auto, or a step count N >= 1`);
}

/**
 * Euler sampling from `noise` (t = 1) to t = 0.
 * config: {steps, shift, lpl: "off"|"auto"|"N", lplSimilarity, timesteps, tdtmSteps, spatial, shape}.
 * denoise(x, tFloat32, variant, step) -> Float32Array velocity (may return a Promise).
 * onStep(stepsDone) is called after each step (with the whole remaining count at a leap).
 */
export async function sample(denoise, noise, config, onStep = null) {
  const { steps, shift, shape, tdtmSteps = 0, spatial = false } = config;
  const lpl = parseLpl(config.lpl ?? "off");
  if (lpl.mode === "fixed" && !(lpl.step >= 1 && lpl.step <= steps - 2)) {
    throw new RangeError(`a leap after N steps needs 1 <= N <= ${steps - 2} for ${steps} steps; got ${lpl.step}`);
  }
  if (!(Number.isInteger(tdtmSteps) && tdtmSteps >= 0 && tdtmSteps <= steps)) {
    throw new RangeError(`TDTM steps must be 0..${steps} for ${steps} steps, got ${tdtmSteps}`);
  }
  const ts = timesteps(steps, shift, config.timesteps ?? "discrete");
  const auto = lpl.mode === "auto" ? new AutoLeap({ steps, shape, similarity: config.lplSimilarity ?? "original" }) : null;
  let x = Float32Array.from(noise);
  const result = { x, calls: 0, mergedCalls: 0, leapAt: null, similarities: [] };
  for (let i = 0; i < steps; i++) {
    const merged = i < tdtmSteps;
    const v = await denoise(x, fround(ts[i]), variantName(merged, spatial), i);
    result.calls += 1;
    result.mergedCalls += merged ? 1 : 0;
    let leap = lpl.mode === "fixed" && i === lpl.step;
    if (auto !== null && auto.shouldLeap(i, v)) leap = true;
    if (leap && i < steps - 1) {
      x = eulerStep(x, v, fround(ts[i])); // jump over the whole remaining time
      result.leapAt = i;
      if (onStep) onStep(steps - i);
      break;
    }
    x = eulerStep(x, v, fround(ts[i] - ts[i + 1]));
    if (onStep) onStep(1);
  }
  result.x = x;
  if (auto !== null) result.similarities = auto.similarities;
  return result;
}

/** f32(x - f32(v * dt)) elementwise; a Float32Array store rounds to float32. */
export function eulerStep(x, v, dt) {
  const out = new Float32Array(x.length);
  for (let k = 0; k < x.length; k++) out[k] = x[k] - fround(v[k] * dt);
  return out;
}

/** Latent (1, 3, T, H, W) -> frames (T, H, W, 3) float32: clamp(f32(f32(x + 1) / 2), 0, 1). */
export function framesFromLatent(x, shape) {
  const [, channels, frames, height, width] = shape;
  const plane = height * width;
  const out = new Float32Array(frames * plane * channels);
  for (let c = 0; c < channels; c++) {
    for (let t = 0; t < frames; t++) {
      for (let p = 0; p < plane; p++) {
        const value = fround(fround(x[(c * frames + t) * plane + p] + 1) / 2);
        out[(t * plane + p) * channels + c] = Math.min(Math.max(value, 0), 1);
      }
    }
  }
  return out;
}
