// The page: picks an export folder and shows what the inference worker (worker.js) reports: video
// mode (core/pipeline.js) and validate mode (core/validate.js) run there, off the main thread, so
// the page stays responsive and a generation can be cancelled between denoiser calls.
// Query parameters: ?export=URL (folder), ?mode=video|validate, ?threads=N (wasm threads), ?backend=wasm|webgpu,
// ?latents=URL (a WanPipeline export's starting latents, float32 .npy, instead of the seed's noise).
import { TABLE_HEADER, tableRow } from "./core/validate.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const FPS = 8;
const BACKENDS = ["wasm", "webgpu"];

const app = { folder: null, loaded: false, mode: params.get("mode") === "validate" ? "validate" : "video", timer: null,
  worker: null, requests: new Map(), nextId: 1, busy: false, info: null };

/**
 * A request to the worker (it runs them in order): resolves with its answer, rejects with its error;
 * handlers[type] receive its progress messages (step, call, row) on the way.
 */
function ask(message, handlers = {}) {
  const id = app.nextId++;
  return new Promise((resolve, reject) => {
    app.requests.set(id, { resolve, reject, handlers });
    app.worker.postMessage({ ...message, id });
  });
}

function onWorkerMessage({ data }) {
  if (data.type === "status") { $("status").textContent = data.text; return; }
  const request = app.requests.get(data.id);
  if (!request) return;
  if (request.handlers[data.type]) { request.handlers[data.type](data); return; }
  app.requests.delete(data.id);
  if (data.type === "error") {
    const err = new Error(data.error.message);
    err.name = data.error.name;
    request.reject(err);
  } else request.resolve(data);
}

/** Runs `job` unless another open / generate / validate is under way (the buttons are one at a time). */
async function exclusive(job) {
  if (app.busy) return;
  app.busy = true;
  try {
    await job();
  } finally {
    app.busy = false;
  }
}

async function startWorker() {
  const isolated = globalThis.crossOriginIsolated === true;
  const asked = Number(params.get("threads"));
  const threads = Number.isInteger(asked) && asked >= 1 ? asked : (isolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1);
  const backend = BACKENDS.includes(params.get("backend")) ? params.get("backend") : "wasm";
  $("backend").value = backend;
  $("backend").querySelector("[value=webgpu]").disabled = !navigator.gpu; // no WebGPU in this browser
  app.worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
  app.worker.onmessage = onWorkerMessage;
  app.worker.onerror = (e) => showError(new Error(`the inference worker failed to start: ${e.message ?? "unknown error"}`));
  const { info } = await ask({ type: "configure", backend, threads });
  app.info = info;
  app.threads = info.threads;
  $("runtime-info").textContent = `onnxruntime-web ${info.version} ${info.backend} in a worker, ${info.threads} thread(s), ` +
    `cross-origin isolated: ${info.isolated ? "yes" : "no"}, secure context: ${info.secure ? "yes" : "no"}`;
  showEnvironment(info);
  refreshCache();
}

/** What this page loses where it is not cross-origin isolated or not a secure context. */
function showEnvironment(info) {
  const notes = [];
  if (!info.secure) {
    notes.push("Not a secure context (plain http on a LAN address): no WebCrypto, so every file's sha256 is computed in " +
      "plain JavaScript (an order of magnitude slower than WebCrypto), and no Cache Storage, so every visit downloads the model files again. " +
      "Serve the page over https (or open it as localhost) to keep them.");
  }
  if (!info.isolated) {
    notes.push("Not cross-origin isolated: onnxruntime-web runs 1 wasm thread (threads need SharedArrayBuffer; " +
      "serve with the COOP/COEP headers, `serve.js --isolate`, for ?threads=N).");
  }
  $("env-note").textContent = notes.join(" ");
  $("env-note").hidden = notes.length === 0;
}

async function refreshCache() {
  if (!app.info?.cacheStorage) { $("cache-info").textContent = "Cache: not available on this page (not a secure context)."; $("clear-cache").disabled = true; return; }
  const { usage } = await ask({ type: "cache-usage" }).catch(() => ({ usage: null }));
  if (usage) $("cache-info").textContent = `Cache: ${usage.files} verified file(s), ${(usage.bytes / 1e6).toFixed(1)} MB kept for the next visit.`;
}

async function clearCache() {
  await exclusive(async () => {
    await ask({ type: "clear-cache" });
    await refreshCache();
  });
}

function setState(state, status = "") {
  document.body.dataset.state = state;
  $("status").textContent = status;
}

function showError(err) {
  const refused = err?.name === "FileRefusedError";
  $("error").textContent = refused ? `Refused ${err.message}` : `Error: ${err?.message ?? err}`;
  $("error").hidden = false;
  $("progress").hidden = true;
  setState("error", "");
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

function setMode(mode) {
  app.mode = mode;
  for (const tab of document.querySelectorAll(".tabs button")) tab.setAttribute("aria-selected", String(tab.dataset.mode === mode));
  $("video").hidden = mode !== "video";
  $("validate").hidden = mode !== "validate";
  if (mode === "video" && app.folder && !app.loaded) exclusive(loadFolder);
}

function openFolder(folder) {
  return exclusive(() => openNow(folder));
}

async function openNow(folder) {
  app.folder = folder;
  app.loaded = false;
  $("generate").disabled = true;
  $("folder-info").textContent = `Export folder: ${folder.label}`;
  clearError();
  if (app.mode === "video") await loadFolder();
  else {
    try {
      await ask({ type: "open", folder: { ...folder.source, mode: "validate" } });
      setState("ready", "Folder set; press Validate.");
    } catch (err) {
      showError(err);
    }
  }
}

async function loadFolder() {
  const folder = app.folder;
  setState("loading", "Loading and checking files...");
  try {
    const { info } = await ask({ type: "open", folder: { ...folder.source, mode: "video" } });
    if (folder !== app.folder) return;
    app.loaded = true;
    window.tomobileLoad = info;
    const te = info.textEncoder;
    $("folder-info").textContent = `Export folder: ${info.label} (${info.model}, ${info.size}, ${info.variants} denoiser variants, ` +
      `guidance ${info.guidance}, text encoder ${te.precision ?? "fp32"} ${(te.bytes / 1e6).toFixed(1)} MB)`;
    $("source").open = false;
    $("generate").disabled = false;
    const fetched = info.cached || info.downloaded ? `; downloaded ${(info.downloaded / 1e6).toFixed(1)} MB, ` +
      `${(info.fromCache / 1e6).toFixed(1)} MB from the cache` : "";
    setState("ready", `Every file matches its sha256${fetched}. Ready.`);
    refreshCache();
  } catch (err) {
    showError(err);
  }
}

function readSettings() {
  const mode = $("lpl-mode").value;
  return {
    prompt: $("prompt").value,
    seed: $("seed").value.trim(),
    settings: {
      steps: Number($("steps").value), lpl: mode === "fixed" ? String($("lpl-step").value) : mode,
      tdtmSteps: Number($("tdtm").value), spatial: $("spatial").checked, latentsUrl: params.get("latents"),
    },
  };
}

async function runGenerate(event) {
  event?.preventDefault();
  if (app.loaded) await exclusive(generateNow);
}

async function generateNow() {
  clearError();
  const { prompt, seed, settings } = readSettings();
  const progress = $("progress");
  progress.hidden = false;
  progress.value = 0;
  $("generate").disabled = true;
  $("cancel").hidden = false;
  setState("running", "Generating...");
  const steps = Number(settings.steps);
  let done = 0;
  try {
    const { result } = await ask({ type: "generate", prompt, seed, settings }, {
      step: (m) => { done += m.done; progress.value = done / steps; },
      call: (m) => { $("status").textContent = `Generating: denoiser call ${m.done}, ${m.ms.toFixed(0)} ms (step ${Math.min(done + 1, steps)} of ${steps})`; },
    });
    window.tomobileResult = { ...result, prompt, seed, threads: app.threads, isolated: crossOriginIsolated, backend: app.info.backend };
    window.tomobileRuns = (window.tomobileRuns ?? 0) + 1;
    playClip(result.frames, result.shape);
    renderStats(result);
    setState("done", `Done in ${(result.totalMs / 1000).toFixed(2)} s.`);
  } catch (err) {
    if (err.name === "AbortError") {
      window.tomobileCancelled = (window.tomobileCancelled ?? 0) + 1;
      setState("cancelled", `Cancelled after ${done} of ${steps} steps.`);
    } else showError(err);
  } finally {
    progress.hidden = true;
    $("cancel").hidden = true;
    $("generate").disabled = !app.loaded;
  }
}

function cancelGenerate() {
  app.worker?.postMessage({ type: "cancel" }); // the worker stops before its next denoiser call
}

/** Loops the frames (T, H, W, 3) on the canvas; CSS scales it up with crisp pixels. */
function playClip(frames, [count, height, width]) {
  const canvas = $("clip");
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d");
  const images = [];
  for (let f = 0; f < count; f++) {
    const image = context.createImageData(width, height);
    for (let p = 0; p < height * width; p++) {
      for (let c = 0; c < 3; c++) image.data[4 * p + c] = Math.round(frames[(f * height * width + p) * 3 + c] * 255);
      image.data[4 * p + 3] = 255;
    }
    images.push(image);
  }
  clearInterval(app.timer);
  let index = 0;
  const draw = () => { context.putImageData(images[index], 0, 0); index = (index + 1) % count; };
  draw();
  app.timer = setInterval(draw, 1000 / FPS);
}

function fillTable(table, rows) {
  const header = table.id === "report" ? rows[0] : null; // the report's first row names the columns
  table.replaceChildren(...rows.map((cells) => {
    const tr = document.createElement("tr");
    for (const [i, cell] of cells.entries()) {
      const td = document.createElement(cells === header ? "th" : "td");
      td.textContent = cell;
      if (header) td.dataset.label = header[i];
      if (cell === "pass" || String(cell).startsWith("FAIL")) td.className = cell === "pass" ? "pass" : "FAIL";
      tr.append(td);
    }
    return tr;
  }));
}

function renderStats(r) {
  const leap = r.leapAt === null ? "none" : `step ${r.leapAt} (${r.config.lpl === "auto" ? "auto" : "fixed"})`;
  fillTable($("stats"), [
    ["denoiser calls", `${r.calls} (${r.mergedCalls} TDTM)`],
    ["ms per call", r.msPerCall.toFixed(1)],
    ["sampling", `${(r.samplingMs / 1000).toFixed(2)} s`],
    ["total", `${(r.totalMs / 1000).toFixed(2)} s`],
    ["leap", leap],
    ["variants", r.variants.map((v) => v.replace("denoiser", "") || "plain").join(" ")],
    ["threads", String(app.threads)],
  ]);
  $("result").scrollIntoView?.({ block: "nearest" });
}

async function runValidate() {
  if (!app.folder) { showError(new Error("open an export folder first")); return; }
  await exclusive(validateNow);
}

async function validateNow() {
  clearError();
  $("run-validate").disabled = true;
  fillTable($("report"), []);
  $("report-text").textContent = "";
  setState("running", "Validating...");
  $("source").open = false;
  try {
    const rows = [TABLE_HEADER];
    const { report, text } = await ask({ type: "validate" }, {
      row: (m) => { rows.push(tableRow(m.row)); fillTable($("report"), rows); },
    });
    window.tomobileReport = report;
    $("report-text").textContent = text;
    setState("done", text.split("\n").at(-1));
    refreshCache();
  } catch (err) {
    showError(err);
  } finally {
    $("run-validate").disabled = false;
  }
}

function initialFolderUrl() {
  return params.get("export") ?? "exports/video-dit-tiny/";
}

const urlFolder = (url) => ({ label: url, source: { url: new URL(url, location.href).href } });
const pickedFolder = (files) => ({
  label: `${files.length} picked file(s)`, source: { files: Array.from(files, (f) => [f.webkitRelativePath || f.name, f]) },
});

async function wire() {
  $("folder-url").value = initialFolderUrl();
  $("open-url").addEventListener("click", () => openFolder(urlFolder($("folder-url").value.trim())));
  for (const id of ["folder-pick", "files-pick"]) {
    $(id).addEventListener("change", (e) => { if (e.target.files.length) openFolder(pickedFolder(e.target.files)); });
  }
  for (const tab of document.querySelectorAll(".tabs button")) tab.addEventListener("click", () => setMode(tab.dataset.mode));
  $("video-form").addEventListener("submit", runGenerate);
  $("cancel").addEventListener("click", cancelGenerate);
  $("clear-cache").addEventListener("click", clearCache);
  $("backend").addEventListener("change", () => { // a new worker with the other build: reload with ?backend=
    const next = new URL(location.href);
    next.searchParams.set("backend", $("backend").value);
    location.assign(next);
  });
  $("run-validate").addEventListener("click", runValidate);
  $("lpl-mode").addEventListener("change", () => { $("lpl-step").disabled = $("lpl-mode").value !== "fixed"; });
  $("lpl-step").disabled = true;
  setMode(app.mode);
  try {
    await startWorker();
  } catch (err) {
    showError(err);
    return;
  }
  if (params.has("export")) openFolder(urlFolder(initialFolderUrl()));
  else setState("idle", "Open an export folder (from `tomobile export`).");
}

wire();
