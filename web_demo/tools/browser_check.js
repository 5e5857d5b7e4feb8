// Drives the page in headless Chromium (playwright-core) and reports what it did, as JSON.
//   node tools/browser_check.js JOB.json OUT.json
// JOB: {chromium, userDataDir, screenshot, tasks: [{kind: "generate"|"validate"|"refused", url, runs?, expect?}]}
//   generate: fills the video form for each run {prompt, seed, steps, lpl, lplStep, tdtm, spatial} and
//             collects the frames and stats; validate: runs validate mode and collects the report;
//   refused:  opens the folder and collects the error shown.
// OUT: {tasks: [...results], pageErrors, consoleErrors, foreignRequests, requests}. tests/web/test_browser.py
// judges it (PSNR against `tomobile generate`, every validation row, refusals, no errors, no foreign request).
import { readFileSync, writeFileSync } from "node:fs";
import { chromium } from "playwright-core";

const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const LONG = 15 * 60 * 1000;

function isLocal(url) {
  if (url.startsWith("data:") || url.startsWith("blob:")) return true;
  const { protocol, hostname } = new URL(url);
  return (protocol === "http:" || protocol === "https:") && hostname === "127.0.0.1";
}

function watch(page, log, label) {
  page.on("pageerror", (err) => log.pageErrors.push(`${label}: ${err.message}`));
  page.on("console", (msg) => { if (msg.type() === "error") log.consoleErrors.push(`${label}: ${msg.text()}`); });
}

async function settle(page, counter) {
  await page.waitForFunction((n) => ["done", "error"].includes(document.body.dataset.state) && (window.tomobileRuns ?? 0) >= n
    || document.body.dataset.state === "error", counter, { timeout: LONG, polling: 200 });
  return page.evaluate(() => ({ state: document.body.dataset.state, error: document.getElementById("error").textContent }));
}

async function generate(page, task, screenshot) {
  await page.waitForFunction(() => ["ready", "error"].includes(document.body.dataset.state), null, { timeout: LONG, polling: 200 });
  const runs = [];
  for (const [i, run] of task.runs.entries()) {
    await page.fill("#prompt", run.prompt);
    await page.fill("#seed", String(run.seed));
    await page.fill("#steps", String(run.steps));
    await page.selectOption("#lpl-mode", run.lpl);
    if (run.lpl === "fixed") await page.fill("#lpl-step", String(run.lplStep));
    await page.fill("#tdtm", String(run.tdtm));
    await page.setChecked("#spatial", Boolean(run.spatial));
    await page.click("#generate");
    const end = await settle(page, i + 1);
    if (end.state === "error") { runs.push({ error: end.error }); continue; }
    runs.push(await page.evaluate(() => {
      const r = window.tomobileResult;
      return { ...r, frames: Array.from(r.frames), config: r.config, similarities: r.similarities };
    }));
    if (i === 0 && screenshot) await page.screenshot({ path: screenshot });
  }
  return { runs, info: await page.textContent("#runtime-info") };
}

async function validate(page) {
  await page.waitForFunction(() => ["ready", "error"].includes(document.body.dataset.state), null, { timeout: LONG, polling: 200 });
  await page.click("#run-validate");
  const end = await settle(page, 0);
  if (end.state === "error") return { error: end.error };
  return page.evaluate(() => ({ report: window.tomobileReport, text: document.getElementById("report-text").textContent }));
}

async function refused(page) {
  await page.waitForFunction(() => ["ready", "error"].includes(document.body.dataset.state), null, { timeout: LONG, polling: 200 });
  return page.evaluate(() => ({ state: document.body.dataset.state, error: document.getElementById("error").textContent,
    visible: !document.getElementById("error").hidden }));
}

const RUNNERS = { generate, validate, refused };

async function main([jobPath, outPath]) {
  const job = JSON.parse(readFileSync(jobPath, "utf-8"));
  const log = { tasks: [], pageErrors: [], consoleErrors: [], foreignRequests: [], requests: 0 };
  const context = await chromium.launchPersistentContext(job.userDataDir, {
    executablePath: job.chromium, headless: true, args: FLAGS, viewport: { width: 390, height: 844 },
  });
  context.on("request", (req) => { log.requests += 1; if (!isLocal(req.url())) log.foreignRequests.push(req.url()); });
  try {
    for (const task of job.tasks) {
      const page = await context.newPage();
      watch(page, log, task.name ?? task.kind);
      await page.goto(task.url);
      const started = Date.now();
      const result = await RUNNERS[task.kind](page, task, task.screenshot ? job.screenshot : null);
      log.tasks.push({ name: task.name, kind: task.kind, url: task.url, seconds: (Date.now() - started) / 1000, ...result });
      await page.close();
    }
  } finally {
    await context.close();
    writeFileSync(outPath, JSON.stringify(log));
  }
}

main(process.argv.slice(2)).catch((err) => {
  console.error(`browser_check: error: ${err.stack ?? err}`);
  process.exit(1);
});
