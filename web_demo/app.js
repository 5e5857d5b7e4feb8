// The page: picks an export folder, runs video mode (core/pipeline.js) or validate mode
// (core/validate.js), and shows the results. All model logic lives in core/ (no DOM there).
// Query parameters: ?export=URL (folder), ?mode=video|validate, ?threads=N (wasm threads).
import * as ort from "onnxruntime-web";
import { MapFolder, UrlFolder } from "./core/manifest.js";
import { VideoPipeline } from "./core/pipeline.js";
import { formatTable, TABLE_HEADER, tableRow, validateFolder } from "./core/validate.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const FPS = 8;

const app = { folder: null, pipeline: null, mode: params.get("mode") === "validate" ? "validate" : "video", timer: null };

function configureOrt() {
  const isolated = globalThis.crossOriginIsolated === true;
  const asked = Number(params.get("threads"));
  const threads = Number.isInteger(asked) && asked >= 1 ? asked : (isolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1);
  ort.env.wasm.wasmPaths = new URL("./vendor/", location.href).href;
  ort.env.wasm.numThreads = isolated ? threads : 1; // threads need SharedArrayBuffer, i.e. isolation
  ort.env.wasm.proxy = false;
  ort.env.logLevel = "error";
  app.threads = ort.env.wasm.numThreads;
  $("runtime-info").textContent = `onnxruntime-web ${ort.env.versions?.web ?? ""} wasm, ${app.threads} thread(s), ` +
    `cross-origin isolated: ${isolated ? "yes" : "no"}`;
}

const sessionOptions = { executionProviders: ["wasm"], graphOptimizationLevel: "all" };

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
  if (mode === "video" && app.folder && !app.pipeline) loadVideo();
}

async function openFolder(folder) {
  app.folder = folder;
  app.pipeline = null;
  $("generate").disabled = true;
  $("folder-info").textContent = `Export folder: ${folder.label}`;
  clearError();
  if (app.mode === "video") await loadVideo();
  else setState("ready", "Folder set; press Validate.");
}

async function loadVideo() {
  const folder = app.folder;
  setState("loading", "Loading and checking files...");
  try {
    const pipeline = await VideoPipeline.load(folder, ort, {
      sessionOptions, onFile: (name) => { $("status").textContent = `Checking sha256 and loading ${name}...`; },
    });
    if (folder !== app.folder) return;
    app.pipeline = pipeline;
    const d = pipeline.manifest.sampler;
    $("folder-info").textContent = `Export folder: ${folder.label} (${pipeline.manifest.model}, ${pipeline.shape.slice(2).join("x")}, ` +
      `${pipeline.denoiser.sessions.size} denoiser variants, guidance ${d.guidance})`;
    $("source").open = false;
    $("generate").disabled = false;
    setState("ready", "Every file matches its sha256. Ready.");
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
      tdtmSteps: Number($("tdtm").value), spatial: $("spatial").checked,
    },
  };
}

async function runGenerate(event) {
  event?.preventDefault();
  if (!app.pipeline) return;
  clearError();
  const { prompt, seed, settings } = readSettings();
  const progress = $("progress");
  progress.hidden = false;
  progress.value = 0;
  $("generate").disabled = true;
  setState("running", "Generating...");
  try {
    const steps = Number(settings.steps);
    let done = 0;
    const result = await app.pipeline.generate(prompt, seed, settings, (n) => { done += n; progress.value = done / steps; });
    window.tomobileResult = { ...result, prompt, seed, threads: app.threads, isolated: crossOriginIsolated };
    window.tomobileRuns = (window.tomobileRuns ?? 0) + 1;
    playClip(result.frames, result.shape);
    renderStats(result);
    setState("done", `Done in ${(result.totalMs / 1000).toFixed(2)} s.`);
  } catch (err) {
    showError(err);
  } finally {
    progress.hidden = true;
    $("generate").disabled = !app.pipeline;
  }
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
  clearError();
  $("run-validate").disabled = true;
  fillTable($("report"), []);
  $("report-text").textContent = "";
  setState("running", "Validating...");
  $("source").open = false;
  try {
    const rows = [TABLE_HEADER];
    const report = await validateFolder(app.folder, ort, {
      sessionOptions,
      onArtifact: (name) => { $("status").textContent = `Checking sha256 and running ${name}...`; },
      onRow: (r) => { rows.push(tableRow(r)); fillTable($("report"), rows); },
    });
    window.tomobileReport = report;
    const text = formatTable(report);
    $("report-text").textContent = text;
    setState("done", text.split("\n").at(-1));
  } catch (err) {
    showError(err);
  } finally {
    $("run-validate").disabled = false;
  }
}

function initialFolderUrl() {
  return params.get("export") ?? "exports/video-dit-tiny/";
}

function wire() {
  configureOrt();
  $("folder-url").value = initialFolderUrl();
  $("open-url").addEventListener("click", () => openFolder(new UrlFolder($("folder-url").value.trim())));
  $("folder-pick").addEventListener("change", (e) => { if (e.target.files.length) openFolder(MapFolder.fromFileList(e.target.files)); });
  for (const tab of document.querySelectorAll(".tabs button")) tab.addEventListener("click", () => setMode(tab.dataset.mode));
  $("video-form").addEventListener("submit", runGenerate);
  $("run-validate").addEventListener("click", runValidate);
  $("lpl-mode").addEventListener("change", () => { $("lpl-step").disabled = $("lpl-mode").value !== "fixed"; });
  $("lpl-step").disabled = true;
  setMode(app.mode);
  if (params.has("export")) openFolder(new UrlFolder(initialFolderUrl()));
  else setState("idle", "Open an export folder (from `tomobile export`).");
}

wire();
