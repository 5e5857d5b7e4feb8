// Drives the page as a phone would use it (headless Chromium, playwright-core) and reports, as JSON,
// what tests/web/test_phone.py judges.
//   node tools/phone_check.js JOB.json OUT.json
// JOB: {chromium, userDataDir, base (page URL), export (folder path under base), steps, throttle, idleMs,
//       flatFiles: [paths], screenshots: {during, after}, prompt, seed, phases: ["first", "second", "flat", "webgpu"]}
// Each phase runs in a 390 x 844 touch viewport with a mobile user agent:
//   first:   a fresh profile opens the export (bytes downloaded); under CPU throttling (CDP
//            Emulation.setCPUThrottlingRate) the idle page, then a `steps`-step generation, are watched
//            by a requestAnimationFrame loop (gaps between frames) and the Long Tasks API (main-thread
//            tasks >= 50 ms); a screenshot after.
//   cancel:  starts a 30-step generation, takes the screenshot during it, and cancels it.
//   second:  the browser is closed and opened again on the same profile: bytes downloaded again.
//   flat:    validate mode on the export's files picked flat (bare names, test_vectors/* included).
//   webgpu:  a second browser with a software WebGPU adapter (SwiftShader) generates with ?backend=webgpu.
import { readFileSync, writeFileSync } from "node:fs";
import { chromium } from "playwright-core";

const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];
// Chromium's WebGPU on SwiftShader (a CPU Vulkan): the only adapter a machine without a GPU has.
const WEBGPU_FLAGS = ["--headless", "--no-sandbox", "--disable-quic", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--enable-unsafe-webgpu", "--enable-features=Vulkan", "--use-angle=swiftshader"];
const PHONE = {
  viewport: { width: 390, height: 844 }, deviceScaleFactor: 1, isMobile: true, hasTouch: true,
  userAgent: "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Mobile Safari/537.36",
};
const LONG = 15 * 60 * 1000;

/** Counts response bytes of the context: all of them, and those of export files (.onnx, .npz, .bin). */
function meter(context) {
  const m = { requests: 0, bytes: 0, modelRequests: 0, modelBytes: 0, notModified: 0, urls: [] };
  context.on("requestfinished", async (request) => {
    const response = await request.response();
    const size = (await request.sizes().catch(() => null))?.responseBodySize ?? 0;
    const url = new URL(request.url());
    if (url.protocol === "data:" || url.protocol === "blob:") return;
    m.requests += 1;
    m.bytes += size;
    if (response?.status() === 304) m.notModified += 1;
    if (/^\/exports\/.*\.(onnx|npz|bin|data)$/.test(url.pathname)) { m.modelRequests += 1; m.modelBytes += size; }
    m.urls.push(`${response?.status()} ${url.pathname} ${size}`);
  });
  return m;
}

async function launch(job, args = FLAGS) {
  const context = await chromium.launchPersistentContext(job.userDataDir, { executablePath: job.chromium, headless: true, args, ...PHONE });
  const log = { pageErrors: [], consoleErrors: [] };
  context.on("page", (page) => {
    page.on("pageerror", (err) => log.pageErrors.push(err.message));
    page.on("console", (msg) => { if (msg.type() === "error") log.consoleErrors.push(msg.text()); });
  });
  return { context, log, net: meter(context) };
}

const waitState = (page, states) => page.waitForFunction((s) => s.includes(document.body.dataset.state), states, { timeout: LONG, polling: 100 });
const pageState = (page) => page.evaluate(() => ({ state: document.body.dataset.state, error: document.getElementById("error").textContent,
  status: document.getElementById("status").textContent, load: window.tomobileLoad ?? null }));

const TASK = "ThreadControllerImpl::RunTask";

/** Starts a trace of every thread's tasks: wall time (dur) and the thread's own CPU time (tdur). */
async function startTrace(cdp) {
  const events = [];
  cdp.on("Tracing.dataCollected", ({ value }) => events.push(...value));
  await cdp.send("Tracing.start", { categories: "toplevel", transferMode: "ReportEvents" });
  return events;
}

/**
 * The tasks of the page's main thread (CrRendererMain of the renderer that also runs the inference
 * worker): the longest by wall time and by the thread's CPU time. The wall time also holds whatever
 * kept the thread off a core (the throttler's pauses, other processes on a busy machine); the CPU
 * time is the page's own work.
 */
async function endTrace(cdp, events) {
  const complete = new Promise((resolve) => cdp.once("Tracing.tracingComplete", resolve));
  await cdp.send("Tracing.end");
  await complete;
  const names = new Map(events.filter((e) => e.ph === "M" && e.name === "thread_name").map((e) => [`${e.pid}:${e.tid}`, e.args.name]));
  const workerPids = new Set([...names].filter(([, n]) => n.startsWith("DedicatedWorker")).map(([k]) => k.split(":")[0]));
  const main = [...names].find(([k, n]) => n === "CrRendererMain" && workerPids.has(k.split(":")[0]))?.[0];
  const tasks = events.filter((e) => e.ph === "X" && e.name === TASK && `${e.pid}:${e.tid}` === main);
  const ms = (us) => (us ?? 0) / 1000;
  return { thread: main ?? null, count: tasks.length, maxWallMs: Math.max(0, ...tasks.map((e) => ms(e.dur))),
    maxCpuMs: Math.max(0, ...tasks.map((e) => ms(e.tdur))), totalCpuMs: tasks.reduce((a, e) => a + ms(e.tdur), 0) };
}

/** Starts a requestAnimationFrame loop on the main thread: window.__gaps collects the time between frames. */
function startFrameMonitor(page) {
  return page.evaluate(() => {
    window.__gaps = [];
    window.__watch = true;
    window.__at = [];
    window.__tasks = []; // main-thread tasks >= 50 ms (Long Tasks API): [start, duration]
    window.__frames = []; // long animation frames: [start, duration, blockingDuration]
    window.__observers = [
      new PerformanceObserver((list) => { for (const e of list.getEntries()) window.__tasks.push([e.startTime, e.duration]); }),
      new PerformanceObserver((list) => { for (const e of list.getEntries()) window.__frames.push([e.startTime, e.duration, e.blockingDuration]); }),
    ];
    window.__observers[0].observe({ type: "longtask" });
    window.__observers[1].observe({ type: "long-animation-frame" });
    let last = performance.now();
    const tick = (now) => {
      window.__gaps.push(now - last);
      window.__at.push(now);
      last = now;
      if (window.__watch) requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  });
}

async function stopFrameMonitor(page) {
  return page.evaluate(() => {
    window.__watch = false;
    for (const o of window.__observers) { o.takeRecords(); o.disconnect(); }
    return { gaps: window.__gaps, at: window.__at, tasks: window.__tasks, frames: window.__frames };
  });
}

async function fillForm(page, steps) {
  await page.fill("#steps", String(steps));
  await page.selectOption("#lpl-mode", "off");
  await page.fill("#tdtm", "0");
}

async function firstVisit(job, out) {
  const { context, log, net } = await launch(job);
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await page.goto(`${job.base}?export=${job.export}`);
  await waitState(page, ["ready", "error"]);
  out.first = { ...(await pageState(page)), net: { ...net, urls: net.urls.slice() } };
  // Generation under throttling, the main thread watched by a rAF loop.
  await cdp.send("Emulation.setCPUThrottlingRate", { rate: job.throttle });
  await fillForm(page, job.steps);
  // The idle page first, same throttling, same monitor: what this machine alone does to the main thread.
  await startFrameMonitor(page);
  await page.waitForTimeout(job.idleMs ?? 4000);
  out.idle = await stopFrameMonitor(page);
  const trace = job.trace ? await startTrace(cdp) : null;
  await startFrameMonitor(page);
  const clickStart = Date.now();
  // A tap dispatched in the page: Playwright's own tap runs actionability checks on the main thread,
  // which would count as the page's blocking.
  await page.dispatchEvent("#generate", "click");
  await page.waitForFunction(() => ["done", "error"].includes(document.body.dataset.state), null, { timeout: LONG, polling: 1000 });
  const { gaps, at, tasks, frames } = await stopFrameMonitor(page);
  const mainThread = trace ? await endTrace(cdp, trace) : null;
  out.generate = { ...(await pageState(page)), gaps, at, tasks, frames, mainThread, seconds: (Date.now() - clickStart) / 1000, throttle: job.throttle,
    result: await page.evaluate(() => { const r = window.tomobileResult; return r && { ...r, frames: Array.from(r.frames) }; }) };
  await page.screenshot({ path: job.screenshots.after });
  // A long run, screenshot during it (not in the measured run: a capture holds the page's frames),
  // then cancelled after its first denoiser calls.
  await fillForm(page, 30);
  await page.tap("#generate");
  await page.waitForFunction(() => /denoiser call [1-9]/.test(document.getElementById("status").textContent), null, { timeout: LONG, polling: 20 });
  await page.screenshot({ path: job.screenshots.during });
  await page.tap("#cancel");
  await waitState(page, ["cancelled", "done", "error"]);
  out.cancel = { ...(await pageState(page)), cancelled: await page.evaluate(() => window.tomobileCancelled ?? 0) };
  await cdp.send("Emulation.setCPUThrottlingRate", { rate: 1 });
  out.cacheInfo = await page.textContent("#cache-info");
  await context.close();
  out.errors = { first: log };
}

async function secondVisit(job, out) {
  const { context, log, net } = await launch(job);
  const page = await context.newPage();
  await page.goto(`${job.base}?export=${job.export}`);
  await waitState(page, ["ready", "error"]);
  out.second = { ...(await pageState(page)), net: { ...net, urls: net.urls.slice() } };
  // The clear button empties the cache: the next visit would download everything again.
  await page.tap("#clear-cache");
  await page.waitForFunction(() => /Cache: 0 verified/.test(document.getElementById("cache-info").textContent), null, { timeout: 60000 });
  out.cleared = await page.textContent("#cache-info");
  await context.close();
  out.errors.second = log;
}

async function flatPick(job, out) {
  const { context, log } = await launch(job);
  const page = await context.newPage();
  await page.goto(`${job.base}?mode=validate`);
  await waitState(page, ["idle", "error"]);
  await page.setInputFiles("#files-pick", job.flatFiles);
  await waitState(page, ["ready", "error"]);
  await page.tap("#run-validate");
  await waitState(page, ["done", "error"]);
  out.flat = { ...(await pageState(page)), report: await page.evaluate(() => window.tomobileReport ?? null),
    text: await page.textContent("#report-text"), label: await page.textContent("#folder-info") };
  await context.close();
  out.errors.flat = log;
}

async function webgpu(job, out) {
  const { context, log } = await launch({ ...job, userDataDir: `${job.userDataDir}-webgpu` }, WEBGPU_FLAGS);
  const page = await context.newPage();
  await page.goto(`${job.base}?backend=webgpu&export=${job.export}`);
  out.webgpu = { adapter: await page.evaluate(async () => {
    const adapter = await navigator.gpu?.requestAdapter();
    return adapter ? { vendor: adapter.info?.vendor, architecture: adapter.info?.architecture } : null;
  }) };
  await waitState(page, ["ready", "error"]);
  Object.assign(out.webgpu, await pageState(page));
  if (out.webgpu.state === "ready") {
    await fillForm(page, job.webgpuSteps ?? job.steps);
    await page.fill("#prompt", job.prompt);
    await page.fill("#seed", job.seed);
    await page.tap("#generate");
    await waitState(page, ["done", "error"]);
    Object.assign(out.webgpu, await pageState(page), {
      result: await page.evaluate(() => { const r = window.tomobileResult; return r && { ...r, frames: Array.from(r.frames) }; }),
      info: await page.textContent("#runtime-info") });
  }
  await context.close();
  out.errors.webgpu = log;
}

async function main([jobPath, outPath]) {
  const job = JSON.parse(readFileSync(jobPath, "utf-8"));
  const out = { errors: {} };
  try {
    const phases = job.phases ?? ["first", "second", "flat"];
    if (phases.includes("first")) await firstVisit(job, out);
    if (phases.includes("second")) await secondVisit(job, out);
    if (phases.includes("flat")) await flatPick(job, out);
    if (phases.includes("webgpu")) await webgpu(job, out);
  } finally {
    writeFileSync(outPath, JSON.stringify(out));
  }
}

main(process.argv.slice(2)).catch((err) => {
  console.error(`phone_check: error: ${err.stack ?? err}`);
  process.exit(1);
});
