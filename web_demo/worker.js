// The page's inference worker: loads and verifies the export folder, runs video mode and validate
// mode with onnxruntime-web, and reports to app.js by messages, so the page's main thread only draws.
// A "cancel" message stops a generation before its next denoiser call. (Module workers have no import
// map: vendor files are imported by path.)
//
// page -> worker: {type: "configure", backend, threads}  {type: "open", folder: {url, mode} | {files: [[path, File]], mode}}
//                 {type: "generate", prompt, seed, settings}  {type: "validate"}  {type: "cancel"}
//                 {type: "cache-usage"}  {type: "clear-cache"}
// worker -> page: {type: "status", text}  {type: "loaded", info}  {type: "call", done, ms}  {type: "step", done}
//                 {type: "result", result}  {type: "row", row}  {type: "report", report, text}
//                 {type: "cache", usage}  {type: "error", error: {name, message}}
import { clearByteCache, cacheUsage, openByteCache } from "./core/cache.js";
import { MapFolder, readManifest, UrlFolder } from "./core/manifest.js";
import { parseNpy } from "./core/npz.js";
import { VideoPipeline } from "./core/pipeline.js";
import { isWanManifest, WanVideoPipeline } from "./core/wan.js";
import { formatTable, validateFolder } from "./core/validate.js";
import { Tokenizer } from "./vendor/tokenizers.min.mjs";

const state = { ort: null, sessionOptions: null, folder: null, pipeline: null, controller: null, busy: Promise.resolve(), request: null };
// Every message names the request it belongs to (the page's id), progress and status included.
const post = (message, transfer = []) => postMessage({ id: state.request, ...message }, transfer);

async function configure({ backend = "wasm", threads = 1 }) {
  // The WebGPU build also runs wasm; it is loaded only when asked for (it is larger).
  state.ort = await import(backend === "webgpu" ? "./vendor/ort.webgpu.min.mjs" : "./vendor/ort.wasm.min.mjs");
  const { env } = state.ort;
  env.wasm.wasmPaths = new URL("./vendor/", self.location.href).href;
  env.wasm.numThreads = self.crossOriginIsolated ? threads : 1; // threads need SharedArrayBuffer
  env.wasm.proxy = false; // this worker is the proxy
  env.logLevel = "error";
  state.sessionOptions = { executionProviders: [backend], graphOptimizationLevel: "all", logSeverityLevel: 3 };
  return { backend, threads: env.wasm.numThreads, version: env.versions?.web ?? "", isolated: self.crossOriginIsolated,
    secure: self.isSecureContext, webCrypto: Boolean(self.crypto?.subtle), cacheStorage: Boolean(self.caches && self.isSecureContext) };
}

async function open(source) {
  state.pipeline = null;
  state.folder = source.url !== undefined
    ? new UrlFolder(source.url, await openByteCache(self))
    : MapFolder.fromPaths(source.files);
  if (source.mode !== "video") return { label: state.folder.label };
  const folder = state.folder;
  const start = performance.now();
  const Pipeline = isWanManifest(await readManifest(folder)) ? WanVideoPipeline : VideoPipeline;
  const pipeline = await Pipeline.load(folder, state.ort, {
    Tokenizer, sessionOptions: state.sessionOptions, onFile: (name) => post({ type: "status", text: `Checking sha256 and loading ${name}...` }),
  });
  state.pipeline = pipeline;
  return {
    label: folder.label, model: pipeline.manifest.model, size: pipeline.shape.slice(2).join("x"), guidance: pipeline.defaults.guidance,
    variants: pipeline.denoiser.sessions.size, textEncoder: pipeline.files[0], loadMs: performance.now() - start,
    downloaded: folder.downloaded ?? 0, fromCache: folder.fromCache ?? 0, cached: Boolean(folder.cache),
  };
}

/** settings.latentsUrl (a float32 .npy, e.g. `?latents=URL`): the starting latents of a Wan export's clip. */
async function startLatents(url) {
  if (!url) return null;
  const response = await fetch(url);
  if (!response.ok) throw new Error(`latents ${url}: HTTP ${response.status}`);
  const npy = parseNpy(new Uint8Array(await response.arrayBuffer()));
  if (npy.dtype !== "<f4") throw new Error(`latents ${url} hold ${npy.dtype}; float32 latents are needed`);
  return npy.data;
}

async function generate({ prompt, seed, settings }) {
  if (!state.pipeline) throw new Error("open a video-dit-tiny or WanPipeline export folder first");
  if (settings.latentsUrl) settings = { ...settings, latents: await startLatents(settings.latentsUrl) };
  state.controller = new AbortController();
  let calls = 0;
  try {
    const result = await state.pipeline.generate(prompt, seed, settings, (done) => post({ type: "step", done }), {
      signal: state.controller.signal, onCall: (ms) => post({ type: "call", done: ++calls, ms }),
    });
    return result;
  } finally {
    state.controller = null;
  }
}

async function validate() {
  if (!state.folder) throw new Error("open an export folder first");
  const report = await validateFolder(state.folder, state.ort, {
    sessionOptions: state.sessionOptions,
    onArtifact: (name) => post({ type: "status", text: `Checking sha256 and running ${name}...` }),
    onRow: (row) => post({ type: "row", row }),
  });
  return { report, text: formatTable(report) };
}

const HANDLERS = {
  configure: async (m) => post({ type: "configured", info: await configure(m) }),
  open: async (m) => post({ type: "loaded", info: await open(m.folder) }),
  generate: async (m) => {
    const result = await generate(m);
    post({ type: "result", result }, [result.frames.buffer]);
  },
  validate: async () => post({ type: "report", ...(await validate()) }),
  "cache-usage": async () => post({ type: "cache", usage: await cacheUsage(self) }),
  "clear-cache": async () => {
    await clearByteCache(self);
    post({ type: "cache", usage: await cacheUsage(self), cleared: true });
  },
};

self.onmessage = ({ data }) => {
  if (data.type === "cancel") { // handled at once, not queued behind the running job
    state.controller?.abort(new DOMException("generation cancelled", "AbortError"));
    return;
  }
  state.busy = state.busy.then(async () => {
    state.request = data.id;
    try {
      await HANDLERS[data.type](data);
    } catch (err) {
      post({ type: "error", error: { name: err?.name ?? "Error", message: String(err?.message ?? err) } });
    }
  });
};
