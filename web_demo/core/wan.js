// Text-to-video from a WanPipeline export (`tomobile export PIPELINE_DIR --format onnx`) on
// onnxruntime-web, as runtime/wan_generate.py: clean and tokenize the prompt (and the negative
// prompt "" with guidance > 1) -> text_encoder -> the flow sampler (flow.js) calling transformer /
// transformer_tdtm with WanPipeline's guidance -> vae_decoder (it un-scales the latents itself)
// -> frames. Every file is checked against manifest.json's sha256 before use. `ort` is passed in.
// Mirrors: Kotlin Flow.kt, Swift Flow.swift (the sampler); the phone apps do not run Wan exports yet.
import { FileRefusedError, listedFiles, loadListed, readManifest, withExternalData } from "./manifest.js";
import { latentNoise, parseSeed } from "./noise.js";
import { flowSchedule, promptClean, sampleFlow } from "./flow.js";
import { onnxArtifact } from "./pipeline.js";

const decoder = new TextDecoder();
export const WAN_KIND = "wan-pipeline";

/** Whether a manifest describes a WanPipeline export. */
export function isWanManifest(manifest) {
  return manifest?.pipeline?.kind === WAN_KIND;
}

/** WanPipeline's tokenizer call: the cleaned prompt with its special tokens, padded to `length`; a longer one is refused. */
export class WanTokenizer {
  constructor(tokenizer, padId) {
    this.tokenizer = tokenizer;
    this.padId = padId;
  }

  static fromFiles(jsonText, configText, Tokenizer) {
    const config = JSON.parse(configText);
    const tokenizer = new Tokenizer(JSON.parse(jsonText), config);
    return new WanTokenizer(tokenizer, tokenizer.token_to_id(config.pad_token ?? "<pad>") ?? 0);
  }

  encode(prompt, length) {
    const ids = this.tokenizer.encode(promptClean(prompt), { add_special_tokens: true }).ids;
    if (ids.length > length) {
      throw new RangeError(`the prompt has ${ids.length} tokens (with the end token) and the text length is ${length}; shorten the prompt to at most ${length} tokens`);
    }
    const inputIds = new Array(length).fill(this.padId);
    const attentionMask = new Array(length).fill(0);
    ids.forEach((id, i) => { inputIds[i] = id; attentionMask[i] = 1; });
    return { inputIds, attentionMask };
  }
}

/** Runs one ONNX part on float32 / int64 inputs named by manifest.parts[part]; returns the first output. */
async function runPart(ort, session, spec, values) {
  const feeds = {};
  spec.inputs.forEach((input, i) => {
    const value = values[i];
    feeds[input.name] = input.dtype === "int64"
      ? new ort.Tensor("int64", BigInt64Array.from(value, BigInt), input.shape)
      : new ort.Tensor("float32", value, input.shape);
  });
  const out = await session.run(feeds);
  return out[session.outputNames[0]].data;
}

export class WanVideoPipeline {
  constructor(manifest, scheduler, tokenizer, ort, sessions) {
    this.manifest = manifest;
    this.spec = manifest.pipeline;
    this.scheduler = scheduler; // scheduler_config.json
    this.tokenizer = tokenizer;
    this.ort = ort;
    this.sessions = sessions; // part -> InferenceSession
    this.shape = this.spec.latent_shape;
    this.defaults = { guidance: this.spec.guidance, steps: this.spec.steps };
    this.denoiser = { sessions: new Map([...sessions].filter(([p]) => p.startsWith("transformer"))) };
  }

  /** Reads and verifies the manifest, tokenizer, scheduler config and every ONNX part; refuses a missing or altered file. */
  static async load(folder, ort, { Tokenizer, sessionOptions = {}, onFile = () => {} } = {}) {
    const manifest = await readManifest(folder);
    if (!isWanManifest(manifest)) throw new FileRefusedError("manifest.json", "is not a WanPipeline export (no pipeline entry of kind wan-pipeline)");
    const spec = manifest.pipeline;
    const listed = listedFiles(manifest);
    const read = async (relPath) => { onFile(relPath); return loadListed(folder, manifest, relPath); };
    const cache = new Map();
    const readOnce = (relPath) => { if (!cache.has(relPath)) cache.set(relPath, read(relPath)); return cache.get(relPath); };
    const text = async (relPath) => decoder.decode(await read(relPath));
    const scheduler = JSON.parse(await text(spec.scheduler.config));
    flowSchedule(scheduler, spec.steps); // refuses a scheduler the sampler does not implement, before any model loads
    const tokConfig = listed.has(`${spec.tokenizer}/tokenizer_config.json`) ? await text(`${spec.tokenizer}/tokenizer_config.json`) : "{}";
    const tokenizer = WanTokenizer.fromFiles(await text(`${spec.tokenizer}/tokenizer.json`), tokConfig, Tokenizer);
    const sessions = new Map();
    for (const part of Object.values(spec.parts)) {
      const artifact = onnxArtifact(manifest, part);
      if (!artifact) {
        if (part === "transformer_tdtm") continue;
        throw new FileRefusedError(`${part}.onnx`, "is not in the export (export with --format onnx)");
      }
      sessions.set(part, await ort.InferenceSession.create(await read(artifact.path), await withExternalData(artifact, sessionOptions, readOnce)));
    }
    const pipeline = new WanVideoPipeline(manifest, scheduler, tokenizer, ort, sessions);
    pipeline.files = [...sessions.keys()].map((part) => onnxArtifact(manifest, part));
    return pipeline;
  }

  async encode(prompt) {
    const { inputIds, attentionMask } = this.tokenizer.encode(prompt, this.spec.text_tokens);
    return runPart(this.ort, this.sessions.get("text_encoder"), this.manifest.parts.text_encoder, [inputIds, attentionMask]);
  }

  /** settings: {steps, guidance, lpl, lplSimilarity, tdtmSteps, negativePrompt, latents (Float32Array)}; the export's defaults fill the rest. */
  resolve(settings) {
    const steps = Number(settings.steps ?? this.spec.steps);
    const tdtmSteps = Number(settings.tdtmSteps ?? 0);
    if (tdtmSteps > 0 && !this.sessions.has("transformer_tdtm")) {
      throw new RangeError("this export has no TDTM transformer; export the pipeline with --merge tdtm to use TDTM steps");
    }
    return { steps, schedule: flowSchedule(this.scheduler, steps), guidance: Number(settings.guidance ?? this.spec.guidance),
      lpl: String(settings.lpl ?? "off"), lplSimilarity: settings.lplSimilarity ?? "original", tdtmSteps, shape: this.shape,
      negativePrompt: settings.negativePrompt ?? this.spec.negative_prompt ?? "", scheduler: this.scheduler._class_name };
  }

  /** The starting latents: settings.latents (float32 of the latent shape) or the portable noise of `seed`. */
  startLatents(seed, latents) {
    const count = this.shape.reduce((a, b) => a * b, 1);
    if (latents == null) return latentNoise(this.shape, parseSeed(seed));
    if (!(latents instanceof Float32Array) || latents.length !== count) {
      throw new RangeError(`the latents must be float32 of shape [${this.shape.join(", ")}] (${count} values)`);
    }
    return latents;
  }

  /** One clip: frames (N, H, W, 3) float32 in [0, 1] and what it took; cancellable between transformer calls with `signal`. */
  async generate(prompt, seed, settings, onStep = null, { signal = null, onCall = null } = {}) {
    const config = this.resolve(settings);
    const start = performance.now();
    const latents = this.startLatents(seed, settings.latents);
    const states = { cond: await this.encode(prompt) };
    if (config.guidance > 1) states.uncond = await this.encode(config.negativePrompt);
    const encodeMs = performance.now() - start;
    const spec = this.manifest.parts.transformer;
    const times = [];
    let merged = 0;
    const denoise = async (x, t, branch, part) => {
      if (signal) { await new Promise((r) => setTimeout(r, 0)); signal.throwIfAborted(); }
      const begin = performance.now();
      const v = await runPart(this.ort, this.sessions.get(part), spec, [x, Float32Array.of(t), states[branch]]);
      times.push(performance.now() - begin);
      merged += part === "transformer_tdtm" ? 1 : 0;
      onCall?.(times.at(-1));
      return v;
    };
    const sampleStart = performance.now();
    const result = await sampleFlow(denoise, latents, config.schedule, config, onStep);
    const samplingMs = performance.now() - sampleStart;
    const frames = await runPart(this.ort, this.sessions.get("vae_decoder"), this.manifest.parts.vae_decoder, [result.x]);
    const [, n, h, w] = this.manifest.parts.vae_decoder.outputs[0].shape;
    return {
      frames: Float32Array.from(frames), shape: [n, h, w, 3], config: { ...config, schedule: undefined },
      calls: times.length, mergedCalls: merged, steps: result.steps, leapAt: result.leapAt, similarities: result.similarities,
      variants: [...new Set(["transformer", ...(merged ? ["transformer_tdtm"] : [])])],
      callMs: times, msPerCall: times.reduce((a, b) => a + b, 0) / times.length, encodeMs, samplingMs,
      totalMs: performance.now() - start,
    };
  }
}
