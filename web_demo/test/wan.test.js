// The Wan contract (test_vectors/wan_contract.json of a WanPipeline export, TOMOBILE_WAN_EXPORT):
// flow schedules, prompt cleaning, the export's tokenizer, the latent un-scaling and the replays
// (Euler and UniPC, CFG, TDTM steps, LPL), digest by digest.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { Tokenizer } from "@huggingface/tokenizers";
import { flowSchedule, promptClean, sampleFlow, unscaleLatents } from "../core/flow.js";
import { digestFloat32, listedFiles, MapFolder, readManifest, verifyFile } from "../core/manifest.js";
import { latentNoise } from "../core/noise.js";
import { WanTokenizer } from "../core/wan.js";

const dir = process.env.TOMOBILE_WAN_EXPORT;
if (!dir) throw new Error("set TOMOBILE_WAN_EXPORT to a folder written by `tomobile export PIPELINE_DIR --format onnx`");

class DiskFolder extends MapFolder {
  constructor(root) { super(root, new Map()); this.root = root; }
  async read(relPath) { return new Uint8Array(await readFile(path.join(this.root, relPath))); }
}
const folder = new DiskFolder(dir);
const manifest = await readManifest(folder);
const listed = listedFiles(manifest);
const read = (relPath) => verifyFile(folder, relPath, listed.get(relPath));
const text = async (relPath) => new TextDecoder().decode(await read(relPath));
const contract = JSON.parse(await text("test_vectors/wan_contract.json"));
const replayBytes = await read(`test_vectors/${contract.replay_file}`);

function velocityAt(call, count) {
  const start = replayBytes.byteOffset + call.output_offset;
  return new Float32Array(replayBytes.buffer.slice(start, start + 4 * count));
}

test("every schedule's sigmas and timesteps, bit for bit", () => {
  assert.ok(contract.schedules.length >= 40);
  for (const entry of contract.schedules) {
    const s = flowSchedule(contract.scheduler_configs[entry.name], entry.steps);
    const where = `${entry.name}, ${entry.steps} steps`;
    assert.equal(s.kind, entry.kind, where);
    assert.deepEqual(s.sigmas, entry.sigmas, where);
    assert.deepEqual(s.timesteps, entry.timesteps, where);
    assert.equal(s.order, entry.order, where);
  }
});

test("other schedulers and options are refused", () => {
  assert.throws(() => flowSchedule({ _class_name: "DDIMScheduler" }, 4), /not supported/);
  assert.throws(() => flowSchedule({ ...contract.scheduler_configs.euler_shift3, use_karras_sigmas: true }, 4), /not supported/);
  assert.throws(() => flowSchedule({ ...contract.scheduler_configs.unipc_shift3_order2, prediction_type: "epsilon" }, 4), /flow_prediction/);
});

test("prompt cleaning", () => {
  for (const c of contract.prompt_clean) assert.equal(promptClean(c.text), c.clean, JSON.stringify(c.text));
});

test("the export's tokenizer at the text length", async () => {
  const spec = manifest.pipeline;
  const tok = WanTokenizer.fromFiles(await text(`${spec.tokenizer}/tokenizer.json`), await text(`${spec.tokenizer}/tokenizer_config.json`), Tokenizer);
  const length = contract.tokenizer.text_tokens;
  assert.equal(length, spec.text_tokens);
  for (const c of contract.tokenizer.cases) {
    const { inputIds, attentionMask } = tok.encode(c.text, length);
    assert.deepEqual(inputIds, c.input_ids, JSON.stringify(c.text));
    assert.deepEqual(attentionMask, c.attention_mask, JSON.stringify(c.text));
  }
  assert.ok(contract.tokenizer.too_long.length > 0);
  for (const c of contract.tokenizer.too_long) assert.throws(() => tok.encode(c.text, length), new RegExp(`has ${c.tokens} tokens`));
});

test("the VAE's latent un-scaling", async () => {
  const s = contract.scaling;
  assert.deepEqual(s.latents_mean, manifest.pipeline.latents_mean);
  const x = latentNoise(s.shape, BigInt(s.seed));
  assert.equal(await digestFloat32(x), s.input_sha256);
  assert.equal(await digestFloat32(unscaleLatents(x, s.shape, s.latents_mean, s.latents_std)), s.output_sha256);
});

for (const replay of contract.replay) {
  test(`replay ${replay.name}`, async () => {
    const { shape } = replay;
    const count = shape.reduce((a, b) => a * b, 1);
    const noise = latentNoise(shape, BigInt(replay.seed));
    assert.equal(await digestFloat32(noise), replay.noise_sha256);
    const schedule = flowSchedule(contract.scheduler_configs[replay.scheduler], replay.steps);
    let next = 0;
    const denoise = async (x, t, branch, part, step) => {
      const call = replay.calls[next++];
      const where = `call ${next - 1}`;
      assert.ok(call, `more calls than recorded (${next})`);
      assert.deepEqual([step, t, branch, part], [call.step, call.timestep, call.branch, call.part], where);
      assert.equal(await digestFloat32(x), call.input_sha256, `input of ${where}`);
      return velocityAt(call, count);
    };
    const config = { guidance: replay.guidance, lpl: replay.lpl, tdtmSteps: replay.tdtm_steps, shape };
    const result = await sampleFlow(denoise, noise, schedule, config);
    assert.equal(next, replay.calls.length);
    assert.equal(result.mergedSteps, replay.merged_steps);
    assert.equal(result.leapAt, replay.leap_at);
    assert.deepEqual(result.similarities, replay.similarities);
    assert.equal(await digestFloat32(result.x), replay.final_latent_sha256);
  });
}
