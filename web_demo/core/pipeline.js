// Text-to-video from a `tomobile export video-dit-tiny` folder on onnxruntime-web: tokenizer ->
// text encoder -> the sampler (sampler.js) calling the denoiser variants -> frames.
// Every file is checked against manifest.json's sha256 before use. `ort` is passed in (no DOM here).
// Mirrors: Kotlin Pipeline.kt, Swift Pipeline.swift (TextEncoder.encode, Denoiser.run, generate).
import { FileRefusedError, listedFiles, loadListed, readManifest, withExternalData } from "./manifest.js";
import { latentNoise, parseSeed } from "./noise.js";
import { framesFromLatent, parseLpl, sample, variantName } from "./sampler.js";
import { WordPieceTokenizer } from "./tokenizer.js";

const decoder = new TextDecoder();

// Precision preference per part: the int8 text encoder is a quarter of the fp32 one's bytes
// (what a phone downloads first); the denoisers stay fp32 unless the export has only int8.
const PREFERRED = { text_encoder: ["int8", "fp32"] };

/** The part's ONNX artifact, the preferred precision first when the export holds more than one. */
export function onnxArtifact(manifest, part) {
  const found = (manifest.artifacts ?? []).filter((a) => a.part === part && a.format === "onnx");
  const rank = (a) => {
    const order = PREFERRED[part] ?? ["fp32", "int8"];
    const i = order.indexOf(a.precision ?? "fp32");
    return i < 0 ? order.length : i;
  };
  return found.sort((a, b) => rank(a) - rank(b))[0];
}

/** Lets queued events (a cancel message) run, then throws the signal's reason if it was aborted. */
async function checkpoint(signal) {
  if (!signal) return;
  await new Promise((resolve) => setTimeout(resolve, 0));
  signal.throwIfAborted();
}

/** TextEncoder.encode(ids, mask) -> states (1, L, D) float32, on the exported text_encoder. */
export class OrtTextEncoder {
  constructor(ort, session, spec) {
    this.ort = ort;
    this.session = session;
    this.spec = spec; // manifest.parts.text_encoder
  }

  async encode(inputIds, attentionMask) {
    const [ids, mask] = this.spec.inputs;
    const feeds = {
      [ids.name]: new this.ort.Tensor("int64", BigInt64Array.from(inputIds, BigInt), ids.shape),
      [mask.name]: new this.ort.Tensor("int64", BigInt64Array.from(attentionMask, BigInt), mask.shape),
    };
    const out = await this.session.run(feeds);
    return out[this.session.outputNames[0]].data;
  }
}

/** Denoiser.run(variant, x, t, states, mask, guidance) -> velocity, timing every call. */
export class OrtDenoiser {
  constructor(ort, sessions, specs) {
    this.ort = ort;
    this.sessions = sessions; // variant -> InferenceSession
    this.specs = specs; // variant -> manifest.parts[variant]
    this.times = [];
  }

  async run(variant, x, t, states, mask, guidance) {
    const session = this.sessions.get(variant);
    if (!session) throw new Error(`variant ${variant} is not in the export; available: ${[...this.sessions.keys()].join(", ")}`);
    const values = [x, Float32Array.of(t), states, mask, Float32Array.of(guidance)];
    const feeds = {};
    this.specs[variant].inputs.forEach((spec, i) => { feeds[spec.name] = new this.ort.Tensor("float32", values[i], spec.shape); });
    const start = performance.now();
    const out = await session.run(feeds);
    this.times.push(performance.now() - start);
    return out[session.outputNames[0]].data;
  }
}

export class VideoPipeline {
  constructor(manifest, tokenizer, textEncoder, denoiser) {
    this.manifest = manifest;
    this.tokenizer = tokenizer;
    this.textEncoder = textEncoder;
    this.denoiser = denoiser;
    const c = manifest.model_config;
    this.shape = [1, c.channels, c.frames, c.size, c.size];
    this.captionLength = c.caption_len;
    this.defaults = manifest.sampler;
  }

  /** Reads and verifies the manifest, tokenizer and every ONNX part; refuses a missing or altered file. */
  static async load(folder, ort, { Tokenizer, sessionOptions = {}, onFile = () => {} } = {}) {
    const manifest = await readManifest(folder);
    if (!manifest.model_config || !manifest.sampler) throw new FileRefusedError("manifest.json", "is not a video pipeline export (no model_config/sampler)");
    const listed = listedFiles(manifest);
    const read = async (relPath) => { onFile(relPath); return loadListed(folder, manifest, relPath); };
    const cache = new Map(); // a shared weights file is read and checked once
    const readOnce = (relPath) => { if (!cache.has(relPath)) cache.set(relPath, read(relPath)); return cache.get(relPath); };
    const tokenizerJson = decoder.decode(await read("tokenizer.json"));
    const tokenizerConfig = listed.has("tokenizer_config.json") ? decoder.decode(await read("tokenizer_config.json")) : "{}";
    const tokenizer = WordPieceTokenizer.fromTokenizerJson(tokenizerJson, tokenizerConfig, Tokenizer);
    const session = async (part) => {
      const artifact = onnxArtifact(manifest, part);
      if (!artifact) throw new FileRefusedError(`${part}.onnx`, "is not in the export (export with --format onnx)");
      return ort.InferenceSession.create(await read(artifact.path), await withExternalData(artifact, sessionOptions, readOnce));
    };
    const textEncoder = new OrtTextEncoder(ort, await session("text_encoder"), manifest.parts.text_encoder);
    const sessions = new Map();
    for (const variant of Object.keys(manifest.variants ?? { denoiser: {} })) {
      if (onnxArtifact(manifest, variant)) sessions.set(variant, await session(variant));
    }
    if (!sessions.has("denoiser")) throw new FileRefusedError("denoiser.onnx", "is not in the export");
    const pipeline = new VideoPipeline(manifest, tokenizer, textEncoder, new OrtDenoiser(ort, sessions, manifest.parts));
    pipeline.files = ["text_encoder", ...sessions.keys()].map((part) => onnxArtifact(manifest, part));
    return pipeline;
  }

  /** settings: {steps, lpl, tdtmSteps, spatial, guidance, timesteps, lplSimilarity}; manifest defaults fill the rest. */
  resolve(settings) {
    const d = this.defaults;
    const steps = Number(settings.steps ?? d.steps);
    if (!Number.isInteger(steps) || steps < 1) throw new RangeError(`steps must be an integer >= 1, got ${settings.steps}`);
    const lpl = String(settings.lpl ?? "off");
    parseLpl(lpl);
    return {
      steps, lpl, tdtmSteps: Number(settings.tdtmSteps ?? 0), spatial: Boolean(settings.spatial),
      guidance: Number(settings.guidance ?? d.guidance), shift: Number(d.shift), shape: this.shape,
      timesteps: settings.timesteps ?? d.timesteps ?? "discrete", lplSimilarity: settings.lplSimilarity ?? d.lpl_similarity ?? "original",
    };
  }

  /**
   * One clip: frames (T, H, W, 3) float32 in [0, 1] and what it took. With `signal` (AbortSignal),
   * each denoiser call first lets queued events run and stops with the signal's reason once aborted:
   * a worker can cancel between calls. onCall(ms) follows every denoiser call.
   */
  async generate(prompt, seed, settings, onStep = null, { signal = null, onCall = null } = {}) {
    const config = this.resolve(settings);
    const start = performance.now();
    const { inputIds, attentionMask } = this.tokenizer.encode(prompt, this.captionLength);
    const states = await this.textEncoder.encode(inputIds, attentionMask);
    const mask = Float32Array.from(attentionMask);
    const encodeMs = performance.now() - start;
    const noise = latentNoise(this.shape, parseSeed(seed));
    this.denoiser.times = [];
    const used = new Set();
    const denoise = async (x, t, variant) => {
      await checkpoint(signal);
      used.add(variant);
      const v = await this.denoiser.run(variant, x, t, states, mask, config.guidance);
      onCall?.(this.denoiser.times.at(-1));
      return v;
    };
    const sampleStart = performance.now();
    const result = await sample(denoise, noise, config, onStep);
    const samplingMs = performance.now() - sampleStart;
    const frames = framesFromLatent(result.x, this.shape);
    const times = this.denoiser.times;
    return {
      frames, shape: [this.shape[2], this.shape[3], this.shape[4], this.shape[1]], inputIds, config,
      calls: result.calls, mergedCalls: result.mergedCalls, leapAt: result.leapAt, similarities: result.similarities,
      variants: [...used].sort(), callMs: [...times], msPerCall: times.reduce((a, b) => a + b, 0) / times.length,
      encodeMs, samplingMs, totalMs: performance.now() - start,
    };
  }
}

export { variantName };
