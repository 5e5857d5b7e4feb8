// The replay: fed the recorded velocities, the JS sampler reproduces every input digest, the
// leap, the similarities and the final latent's and frames' digests.
import assert from "node:assert/strict";
import { test } from "node:test";
import { digestFloat32 } from "../core/manifest.js";
import { latentNoise } from "../core/noise.js";
import { framesFromLatent, sample } from "../core/sampler.js";
import { contract, velocityAt } from "./contract.js";

test("the replay file is the one contract.json describes", async () => {
  const { replayBytes } = await import("./contract.js");
  assert.equal(replayBytes.length, contract.replay_file_bytes);
});

for (const replay of contract.replay) {
  test(`replay ${replay.name}`, async () => {
    const { shape, settings } = replay;
    const count = shape.reduce((a, b) => a * b, 1);
    const noise = latentNoise(shape, replay.seed);
    assert.equal(await digestFloat32(noise), replay.noise_sha256);
    let next = 0;
    const denoise = async (x, t, variant, step) => {
      const call = replay.calls[next++];
      assert.ok(call, `more calls than recorded (${next})`);
      assert.equal(step, call.step);
      assert.equal(variant, call.variant, `call ${step}`);
      assert.equal(t, call.t_float32, `call ${step}`);
      assert.equal(await digestFloat32(x), call.input_sha256, `input of call ${step}`);
      return velocityAt(call, count);
    };
    const config = { steps: settings.steps, shift: settings.shift, shape, lpl: settings.lpl, lplSimilarity: settings.lpl_similarity,
      timesteps: settings.timesteps, tdtmSteps: settings.tdtm_steps, spatial: settings.spatial };
    const result = await sample(denoise, noise, config);
    assert.equal(result.calls, replay.calls.length);
    assert.equal(result.mergedCalls, replay.merged_calls);
    assert.equal(result.leapAt, replay.leap_at);
    assert.deepEqual(result.similarities, replay.similarities);
    assert.equal(await digestFloat32(result.x), replay.final_latent_sha256);
    assert.equal(await digestFloat32(framesFromLatent(result.x, shape)), replay.frames_sha256);
  });
}
