// The portable generator against contract.json: the first 64 normals per seed bit for bit, the
// float32 latents by digest, and portableLog against Math.log.
import assert from "node:assert/strict";
import { test } from "node:test";
import { digestFloat32 } from "../core/manifest.js";
import { latentNoise, parseSeed, portableLog, PortableRandom, splitMix64, standardNormals } from "../core/noise.js";
import { contract } from "./contract.js";

const bits = (x) => { const v = new DataView(new ArrayBuffer(8)); v.setFloat64(0, x); return v.getBigUint64(0); };

test("the first 64 normals of every seed are the contract's doubles, bit for bit", () => {
  assert.ok(contract.noise.length >= 5);
  for (const { seed, values } of contract.noise) {
    const ours = standardNormals(seed, values.length);
    values.forEach((v, i) => assert.equal(bits(ours[i]), bits(v), `seed ${seed}, value ${i}`));
  }
});

test("float32 latents match the contract's digests", async () => {
  for (const { seed, shape, sha256 } of contract.latent_noise) {
    assert.equal(await digestFloat32(latentNoise(shape, seed)), sha256, `seed ${seed}`);
  }
});

test("SplitMix64 wraps mod 2^64 and seeds span the uint64 range", () => {
  const [state, out] = splitMix64((1n << 64n) - 1n);
  assert.equal(state, 0x9E3779B97F4A7C15n - 1n);
  assert.ok(out >= 0n && out < 1n << 64n);
  assert.equal(parseSeed("18446744073709551615"), (1n << 64n) - 1n);
  assert.throws(() => parseSeed("18446744073709551616"), /0\.\.2\^64-1/);
  assert.throws(() => parseSeed(-1), /seed/);
  const rng = new PortableRandom(7);
  const u = Array.from({ length: 1000 }, () => rng.nextUniform());
  assert.ok(u.every((x) => x >= 0 && x < 1));
});

test("portableLog stays within a few ulp of Math.log", () => {
  let worst = 0;
  for (let i = 1; i < 20000; i++) {
    const s = i / 20000;
    const ulp = Math.abs(Math.log(s)) * 2 ** -52;
    worst = Math.max(worst, Math.abs(portableLog(s) - Math.log(s)) / ulp);
  }
  assert.ok(worst < 8, `worst ${worst} ulp`);
});
