// Diffusers' flow-matching sampling for a WanPipeline export, bit for bit as runtime/flow_schedule.py
// and runtime/flow_sampler.py (docs/contract.md, "The Wan pipeline"): the schedules of
// FlowMatchEulerDiscreteScheduler and UniPCMultistepScheduler (flow prediction), their steps,
// WanPipeline's classifier-free guidance, LPL and TDTM steps, the VAE's latent un-scaling and
// WanPipeline's prompt cleaning. No DOM: runs in the page and in node's tests.
// Mirrors: Kotlin Flow.kt, Swift Flow.swift.
import { portableLog } from "./noise.js";
import { AutoLeap, eulerStep, parseLpl } from "./sampler.js";

const fround = Math.fround;
export const EULER = "FlowMatchEulerDiscreteScheduler";
export const UNIPC = "UniPCMultistepScheduler";
// Settings WanPipeline never turns on: refused when truthy.
const UNSUPPORTED = ["use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas", "invert_sigmas",
  "stochastic_sampling", "thresholding", "solver_p", "use_dynamic_shifting"];
const LN2_HI = 6.93147180369123816490e-01;
const LN2_LO = 1.90821492927058770002e-10;
const EXPM1_TERMS = 20;

/** numpy.linspace(start, stop, num) written out (float64): i * step + start, the last = stop. */
export function linspace(start, stop, num) {
  if (num === 1) return [start];
  const step = (stop - start) / (num - 1);
  const out = [];
  for (let i = 0; i < num; i++) out.push(i * step + start);
  out[num - 1] = stop;
  return out;
}

/** diffusers' static flow shift, shift s / (1 + (shift - 1) s), float64. */
export function shifted(sigma, shift) {
  return (shift * sigma) / (1 + (shift - 1) * sigma);
}

function stretchToTerminal(sigmas, terminal) {
  const scale = (1 - sigmas[sigmas.length - 1]) / (1 - terminal);
  return sigmas.map((s) => 1 - (1 - s) / scale);
}

function number(config, key, fallback) {
  const value = config[key] ?? fallback;
  if (typeof value !== "number" || !Number.isFinite(value)) throw new RangeError(`scheduler config ${key} must be a finite number, got ${value}`);
  return value;
}

function eulerSchedule(config, steps) {
  const nTrain = number(config, "num_train_timesteps", 1000);
  const shift = number(config, "shift", 1.0);
  const s32 = fround(shift);
  const less = fround(shift - 1);
  let sMin = fround(1 / nTrain); // float32 training sigmas, as torch builds them
  sMin = fround(fround(s32 * sMin) / fround(1 + fround(less * sMin)));
  const sMax = fround(fround(s32 * 1) / fround(1 + less));
  let sigmas = linspace(sMax * nTrain, sMin * nTrain, steps).map((t) => shifted(t / nTrain, shift));
  if (config.shift_terminal) sigmas = stretchToTerminal(sigmas, number(config, "shift_terminal", 0));
  const sig32 = sigmas.map(fround);
  return { kind: EULER, sigmas: [...sig32, 0], timesteps: sig32.map((s) => fround(s * nTrain)), order: 1,
    lowerOrderFinal: true, solverType: "bh2", disableCorrector: [] };
}

function unipcSchedule(config, steps) {
  if (config.prediction_type !== "flow_prediction" || !config.use_flow_sigmas) {
    throw new RangeError(`UniPCMultistepScheduler is supported with prediction_type flow_prediction and use_flow_sigmas true, got ${config.prediction_type} and ${config.use_flow_sigmas}`);
  }
  if (config.predict_x0 === false) throw new RangeError("UniPCMultistepScheduler with predict_x0 false cannot take flow_prediction");
  const order = number(config, "solver_order", 2);
  let solver = config.solver_type ?? "bh2";
  if (["midpoint", "heun", "logrho"].includes(solver)) solver = "bh2";
  const final = config.final_sigmas_type ?? "zero";
  const lowerFinal = config.lower_order_final ?? true;
  if (!(Number.isInteger(order) && order >= 1 && order <= 3) || !["bh1", "bh2"].includes(solver) || !["zero", "sigma_min"].includes(final)
    || (!lowerFinal && order > 1) || (final === "zero" && solver === "bh1")) {
    throw new RangeError(`UniPC solver_order ${order}, solver_type ${solver}, final_sigmas_type ${final}, lower_order_final ${lowerFinal}: allowed are orders 1 to 3 with lower_order_final, bh2 (or bh1 with sigma_min)`);
  }
  const nTrain = number(config, "num_train_timesteps", 1000);
  const shift = number(config, "flow_shift", 1.0);
  let sigmas = linspace(1.0, 1.0 / nTrain, steps + 1).slice(0, -1).map((s) => shifted(s, shift));
  if (config.shift_terminal) sigmas = stretchToTerminal(sigmas, number(config, "shift_terminal", 0));
  if (Math.abs(sigmas[0] - 1) < 1e-6) sigmas[0] -= 1e-6;
  const timesteps = sigmas.map((s) => Math.trunc(s * nTrain)); // float64 -> int64, as diffusers
  const last = final === "sigma_min" ? sigmas[sigmas.length - 1] : 0;
  return { kind: UNIPC, sigmas: [...sigmas, last].map(fround), timesteps, order, lowerOrderFinal: Boolean(lowerFinal),
    solverType: solver, disableCorrector: (config.disable_corrector ?? []).map(Number) };
}

/** The schedule of a scheduler_config.json object for `steps` steps: {kind, sigmas (steps + 1), timesteps (steps), order, ...}. */
export function flowSchedule(config, steps) {
  if (!Number.isInteger(steps) || steps < 1) throw new RangeError(`steps must be an integer >= 1, got ${steps}`);
  const name = config?._class_name;
  if (name !== EULER && name !== UNIPC) throw new RangeError(`scheduler ${name} is not supported; allowed: ${EULER}, ${UNIPC}`);
  const bad = UNSUPPORTED.find((key) => config[key]);
  if (bad) throw new RangeError(`${name} with ${bad} is not supported; WanPipeline's schedulers leave it off`);
  return name === EULER ? eulerSchedule(config, steps) : unipcSchedule(config, steps);
}

/** e^x - 1 from + - * / only (runtime/flow_sampler.py's portable_expm1). */
export function portableExpm1(x) {
  if (x === -Infinity || x < -40.0) return -1.0;
  const k = Math.floor(x / (LN2_HI + LN2_LO) + 0.5);
  const r = (x - k * LN2_HI) - k * LN2_LO;
  let p = 1.0;
  for (let n = EXPM1_TERMS; n > 1; n--) p = 1.0 + (r * p) / n;
  const scale = 2.0 ** k;
  return scale * (r * p) + (scale - 1.0);
}

/** lambda = log(1 - sigma) - log(sigma) in float32 stages; +inf at sigma 0. */
export function logSnr(sigma) {
  if (sigma === 0) return Infinity;
  return fround(fround(portableLog(fround(1 - sigma))) - fround(portableLog(sigma)));
}

/** Gaussian elimination with partial pivoting (float64), for UniPC's order-3 rho. */
export function solve(matrix, rhs) {
  const n = rhs.length;
  const a = matrix.map((row, i) => [...row, rhs[i]]);
  for (let col = 0; col < n; col++) {
    let pivot = col;
    for (let r = col + 1; r < n; r++) if (Math.abs(a[r][col]) > Math.abs(a[pivot][col])) pivot = r;
    [a[col], a[pivot]] = [a[pivot], a[col]];
    for (let r = col + 1; r < n; r++) {
      const f = a[r][col] / a[col][col];
      a[r] = a[r].map((x, c) => x - f * a[col][c]);
    }
  }
  const out = new Array(n).fill(0);
  for (let r = n - 1; r >= 0; r--) {
    let sum = 0;
    for (let c = r + 1; c < n; c++) sum += a[r][c] * out[c];
    out[r] = (a[r][n] - sum) / a[r][r];
  }
  return out;
}

/** UniPC's update scalars from sigma index s0 to t (float32): {ratio, cM0, cB, rks, rhos}. */
export function unipcUpdate(sigmas, s0, t, order, bh2, corrector) {
  const lamT = logSnr(sigmas[t]);
  const lamS0 = logSnr(sigmas[s0]);
  const h = fround(lamT - lamS0);
  const rks = [];
  for (let k = 1; k < order; k++) rks.push(fround(fround(logSnr(sigmas[s0 - k]) - lamS0) / h));
  const hh = -h;
  const hPhi1 = fround(portableExpm1(hh));
  let hPhiK = fround(fround(hPhi1 / hh) - 1);
  const bH = bh2 ? hPhi1 : hh;
  let factorial = 1;
  const b = [];
  for (let i = 1; i <= order; i++) {
    b.push(fround(fround(hPhiK * factorial) / bH));
    factorial *= i + 1;
    hPhiK = fround(fround(hPhiK / hh) - fround(1 / factorial));
  }
  const powers = [];
  for (let i = 1; i <= order; i++) powers.push([...rks, 1].map((r) => (i === 1 ? 1 : i === 2 ? r : fround(r * r))));
  let rhos;
  if (corrector) rhos = order === 1 ? [0.5] : solve(powers, b).map(fround);
  else if (order === 1) rhos = [];
  else rhos = order === 2 ? [0.5] : solve(powers.slice(0, -1).map((r) => r.slice(0, -1)), b.slice(0, -1)).map(fround);
  const alphaT = fround(1 - sigmas[t]);
  return { ratio: fround(sigmas[t] / sigmas[s0]), cM0: fround(alphaT * hPhi1), cB: fround(alphaT * bH), rks, rhos };
}

/** UniP's order at each step: warm-up, and min(order, steps - i) near the end with lower_order_final. */
export function predictorOrders(schedule) {
  const n = schedule.timesteps.length;
  const out = [];
  for (let i = 0; i < n; i++) {
    const order = schedule.lowerOrderFinal ? Math.min(schedule.order, n - i) : schedule.order;
    out.push(Math.min(order, Math.min(i, schedule.order) + 1));
  }
  return out;
}

/** x_t from x and the data estimates (newest last), in diffusers' operation order, float32. */
function applyUpdate(u, x, history, mT) {
  const m0 = history[history.length - 1];
  const out = new Float32Array(x.length);
  const terms = Math.min(u.rks.length, u.rhos.length);
  for (let e = 0; e < x.length; e++) {
    const xT = fround(fround(u.ratio * x[e]) - fround(u.cM0 * m0[e]));
    let res = null;
    for (let k = 1; k <= terms; k++) {
      const term = fround(u.rhos[k - 1] * fround(fround(history[history.length - 1 - k][e] - m0[e]) / u.rks[k - 1]));
      res = res === null ? term : fround(res + term);
    }
    if (mT !== null) {
      const d1 = fround(u.rhos[u.rhos.length - 1] * fround(mT[e] - m0[e]));
      res = res === null ? d1 : fround(res + d1);
    }
    out[e] = res === null ? xT : fround(xT - fround(u.cB * res));
  }
  return out;
}

/** LPL's jump, and UniPC's data estimate: x - v sigma, float32. */
export function leapTo(x, v, sigma) {
  return eulerStep(x, v, fround(sigma));
}

/** A fresh stepper for one clip: step(i, x, v) -> x at sigma_{i+1}. */
export function stepperFor(schedule) {
  const { sigmas } = schedule;
  if (schedule.kind === EULER) return { step: (i, x, v) => eulerStep(x, v, fround(sigmas[i] - sigmas[i + 1])) };
  const orders = predictorOrders(schedule);
  const bh2 = schedule.solverType === "bh2";
  const predictors = orders.map((p, i) => unipcUpdate(sigmas, i, i + 1, p, bh2, false));
  const correctors = orders.map((_, i) => (i === 0 || schedule.disableCorrector.includes(i - 1) ? null
    : unipcUpdate(sigmas, i - 1, i, orders[i - 1], bh2, true)));
  let history = [];
  let last = null;
  return {
    step(i, x, v) {
      const m = leapTo(x, v, sigmas[i]);
      if (correctors[i] !== null && last !== null) x = applyUpdate(correctors[i], last, history, m);
      history = [...history, m].slice(-schedule.order);
      last = x;
      return applyUpdate(predictors[i], x, history, null);
    },
  };
}

/** WanPipeline's guidance: v_u + g (v_c - v_u) for g > 1 (g rounded to float32), v_c alone otherwise. */
export function guide(vCond, vUncond, guidance) {
  if (guidance <= 1) return vCond;
  const g = fround(guidance);
  const out = new Float32Array(vCond.length);
  for (let k = 0; k < out.length; k++) out[k] = vUncond[k] + fround(g * fround(vCond[k] - vUncond[k]));
  return out;
}

/**
 * Flow sampling from `latents` on `schedule` (runtime/flow_sampler.py's sample_flow + guided).
 * config: {guidance, lpl: "off"|"auto"|"N", lplSimilarity, tdtmSteps, shape}.
 * denoise(x, timestep, prompt: "cond"|"uncond", part: "transformer"|"transformer_tdtm", step) -> velocity.
 */
export async function sampleFlow(denoise, latents, schedule, config, onStep = null) {
  const steps = schedule.timesteps.length;
  const { guidance = 5.0, tdtmSteps = 0, shape } = config;
  const lpl = parseLpl(config.lpl ?? "off");
  if (lpl.mode === "fixed" && !(lpl.step >= 1 && lpl.step <= steps - 2)) {
    throw new RangeError(`a leap after N steps needs 1 <= N <= ${steps - 2} for ${steps} steps; got ${lpl.step}`);
  }
  if (!(Number.isInteger(tdtmSteps) && tdtmSteps >= 0 && tdtmSteps <= steps)) {
    throw new RangeError(`TDTM steps must be 0..${steps} for ${steps} steps, got ${tdtmSteps}`);
  }
  if (!Number.isFinite(guidance)) throw new RangeError(`guidance must be a finite number, got ${guidance}`);
  const stepper = stepperFor(schedule);
  const auto = lpl.mode === "auto" ? new AutoLeap({ steps, shape, similarity: config.lplSimilarity ?? "original" }) : null;
  let x = Float32Array.from(latents);
  const result = { x, calls: 0, steps: 0, mergedSteps: 0, leapAt: null, similarities: [] };
  for (let i = 0; i < steps; i++) {
    const part = i < tdtmSteps ? "transformer_tdtm" : "transformer";
    const t = fround(schedule.timesteps[i]);
    const vCond = await denoise(x, t, "cond", part, i);
    const v = guidance > 1 ? guide(vCond, await denoise(x, t, "uncond", part, i), guidance) : vCond;
    result.calls += guidance > 1 ? 2 : 1;
    result.steps += 1;
    result.mergedSteps += i < tdtmSteps ? 1 : 0;
    let leap = lpl.mode === "fixed" && i === lpl.step;
    if (auto !== null && auto.shouldLeap(i, v)) leap = true;
    if (leap && i < steps - 1) {
      x = leapTo(x, v, schedule.sigmas[i]); // jump over the whole remaining sigma
      result.leapAt = i;
      if (onStep) onStep(steps - i);
      break;
    }
    x = stepper.step(i, x, v);
    if (onStep) onStep(1);
  }
  result.x = x;
  if (auto !== null) result.similarities = auto.similarities;
  return result;
}

/** WanPipeline's un-scaling before the VAE: latents / (1 / std) + mean per channel, float32 ([1, C, F, H, W]). */
export function unscaleLatents(x, shape, mean, std) {
  const [, channels, ...rest] = shape;
  const plane = rest.reduce((a, b) => a * b, 1);
  const out = new Float32Array(x.length);
  for (let c = 0; c < channels; c++) {
    const inv = fround(1 / fround(std[c]));
    const m = fround(mean[c]);
    for (let p = c * plane; p < (c + 1) * plane; p++) out[p] = fround(fround(x[p] / inv) + m);
  }
  return out;
}

// Python's html.unescape on the entities a port supports: amp, lt, gt, quot, nbsp (with or without
// the semicolon), apos; (HTML5 names them so), and decimal / hexadecimal character references.
const ENTITIES = { "amp;": "&", amp: "&", "lt;": "<", lt: "<", "gt;": ">", gt: ">", "quot;": "\"", quot: "\"",
  "apos;": "'", "nbsp;": "\u00a0", nbsp: "\u00a0" };
const CHARREF = /&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)/g;

function charref(body) {
  if (body[0] === "#") {
    const hex = body[1] === "x" || body[1] === "X";
    const code = parseInt(body.slice(hex ? 2 : 1).replace(/;$/, ""), hex ? 16 : 10);
    if (code === 0 || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return "\ufffd";
    return String.fromCodePoint(code);
  }
  if (body in ENTITIES) return ENTITIES[body];
  for (let x = body.length - 1; x > 1; x--) if (body.slice(0, x) in ENTITIES) return ENTITIES[body.slice(0, x)] + body.slice(x);
  return `&${body}`;
}

/** WanPipeline's prompt_clean without ftfy: unescape HTML twice, collapse white space, strip. */
export function promptClean(text) {
  const once = (s) => s.replace(CHARREF, (_, body) => charref(body));
  return once(once(text)).trim().replace(/\s+/g, " ").trim();
}
