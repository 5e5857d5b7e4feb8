// Timesteps, LPL decisions and the TDTM schedule against contract.json.
import assert from "node:assert/strict";
import { test } from "node:test";
import { AutoLeap, defaultMinSteps, roundHalfEven, sample, timesteps, velocitySimilarity } from "../core/sampler.js";
import { contract, velocityAt } from "./contract.js";

test("roundHalfEven is Python's round", () => {
  assert.deepEqual([0.5, 1.5, 2.5, -0.5, 2.4999999999999996, 966.5].map(roundHalfEven), [0, 2, 2, 0, 2, 966]);
});

test("timesteps are the contract's doubles", () => {
  for (const { steps, shift, mode, values } of contract.timesteps) {
    assert.deepEqual(timesteps(steps, shift, mode), values, `${steps} ${mode}`);
  }
});

test("auto LPL: recomputed similarities and every decision", () => {
  const replays = new Map(contract.replay.map((r) => [r.name, r]));
  for (const entry of contract.lpl.filter((e) => e.mode === "auto")) {
    assert.equal(defaultMinSteps(entry.steps), entry.min_steps, entry.name);
    if (entry.replay) {
      const r = replays.get(entry.replay);
      const count = r.shape.reduce((a, b) => a * b, 1);
      const vs = r.calls.map((c) => velocityAt(c, count));
      const sims = vs.slice(1).map((v, j) => velocitySimilarity(vs[j], v, r.shape, entry.similarity));
      assert.deepEqual(sims, entry.similarities, entry.name);
    }
    const rule = new AutoLeap({ steps: entry.steps, tolerance: entry.tolerance, patience: entry.patience });
    let leapAt = null;
    for (const [j, sim] of entry.similarities.entries()) {
      if (rule.observe(j + 1, sim) && j + 1 < entry.steps - 1) { leapAt = j + 1; break; }
    }
    assert.equal(leapAt, entry.leap_at, entry.name);
  }
});

const constant = () => Float32Array.of(1, 1, 1, 1);

test("fixed LPL decisions", async () => {
  for (const entry of contract.lpl.filter((e) => e.mode === "fixed")) {
    const config = { steps: entry.steps, shift: 2.0, shape: [1, 1, 1, 2, 2], lpl: String(entry.step) };
    const result = await sample(constant, new Float32Array(4), config);
    assert.equal(result.leapAt, entry.leap_at, entry.name);
    assert.equal(result.calls, entry.leap_at === null ? entry.steps : entry.leap_at + 1);
  }
});

test("TDTM: the variant of every call", async () => {
  for (const entry of contract.tdtm) {
    const used = [];
    const config = { steps: entry.steps, shift: 2.0, shape: [1, 1, 1, 2, 2], lpl: entry.lpl, tdtmSteps: entry.tdtm_steps, spatial: entry.spatial };
    const result = await sample((x, t, variant) => { used.push(variant); return constant(); }, new Float32Array(4), config);
    assert.deepEqual(used, entry.variants, JSON.stringify(entry));
    assert.deepEqual(used.map((v) => v.includes("_tdtm")), entry.merged);
    assert.equal(result.leapAt, entry.leap_at);
  }
});

test("refuses the settings the Python sampler refuses", async () => {
  const base = { steps: 30, shift: 2.0, shape: [1, 1, 1, 2, 2] };
  await assert.rejects(sample(constant, new Float32Array(4), { ...base, lpl: "29" }), /1 <= N <= 28/);
  await assert.rejects(sample(constant, new Float32Array(4), { ...base, lpl: "0" }), /LPL/);
  await assert.rejects(sample(constant, new Float32Array(4), { ...base, tdtmSteps: 31 }), /TDTM steps must be 0\.\.30/);
  await assert.rejects(sample(constant, new Float32Array(4), { ...base, timesteps: "linear" }), /discrete or continuous/);
});
