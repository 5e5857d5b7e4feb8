// Validate mode: every ONNX artifact of a tomobile export folder, run on its test vectors
// (test_vectors/<part>.npz: inputs and eager PyTorch outputs), compared as `tomobile validate`
// does (runtime/validate.py): max abs error <= 1e-4 for fp32, PSNR floors for fp16 and int8.
// Names and shapes come from manifest.json, never from here. `ort` is onnxruntime-web, passed in.
import { loadListed, readManifest, withExternalData } from "./manifest.js";
import { readNpz } from "./npz.js";

export const THRESHOLDS = { fp32_max_abs_error: 1e-4, fp16_min_psnr_db: 35.0, int8_min_psnr_db: 30.0 };
export const PASS = "pass";
export const FAIL = "FAIL";

/** 20 log10(peak / rmse), peak = max |reference| (1 when 0); Infinity when identical. */
export function psnr(reference, actual) {
  let sum = 0;
  let peak = 0;
  for (let i = 0; i < reference.length; i++) {
    const d = Number(reference[i]) - Number(actual[i]);
    sum += d * d;
    peak = Math.max(peak, Math.abs(Number(reference[i])));
  }
  const mse = sum / reference.length;
  if (mse === 0) return Infinity;
  return 20 * Math.log10((peak || 1) / Math.sqrt(mse));
}

/** {maxAbsError, psnrDb, status, note} of one output under the threshold for `precision`. */
export function compare(reference, refShape, actual, actualShape, precision, thresholds = THRESHOLDS) {
  if (refShape.join("x") !== actualShape.join("x")) {
    return { maxAbsError: NaN, psnrDb: NaN, status: FAIL, note: `shape ${actualShape.join("x")} != eager ${refShape.join("x")}` };
  }
  let maxAbsError = 0;
  let finite = true;
  for (let i = 0; i < reference.length; i++) {
    const a = Number(actual[i]);
    if (!Number.isFinite(a)) finite = false;
    maxAbsError = Math.max(maxAbsError, Math.abs(Number(reference[i]) - a));
  }
  const psnrDb = psnr(reference, actual);
  if (!finite) return { maxAbsError, psnrDb, status: FAIL, note: "non-finite values" };
  if (precision === "fp16" || precision === "int8") {
    const floor = precision === "fp16" ? thresholds.fp16_min_psnr_db : thresholds.int8_min_psnr_db;
    return { maxAbsError, psnrDb, status: psnrDb >= floor ? PASS : FAIL, note: `PSNR >= ${floor} dB` };
  }
  const bound = thresholds.fp32_max_abs_error;
  return { maxAbsError, psnrDb, status: maxAbsError <= bound ? PASS : FAIL, note: `max abs <= ${bound}` };
}

const ORT_TYPES = { "<f4": "float32", "<f8": "float64", "<i8": "int64", "<i4": "int32", "|b1": "bool", "<u8": "uint64" };

/** test vectors -> Map case -> {inputs: Map name -> array, outputs: Map name -> array}. */
function casesOf(arrays) {
  const cases = new Map();
  for (const [key, array] of arrays) {
    const [caseName, kind, ...rest] = key.split(".");
    if (!cases.has(caseName)) cases.set(caseName, { inputs: new Map(), outputs: new Map() });
    cases.get(caseName)[kind === "input" ? "inputs" : "outputs"].set(rest.join("."), array);
  }
  return cases;
}

async function runArtifact(folder, manifest, artifact, ort, sessionOptions) {
  const part = manifest.parts[artifact.part];
  const names = part.outputs.map((o) => o.name);
  const model = await loadListed(folder, manifest, artifact.path);
  const vectors = await readNpz(await loadListed(folder, manifest, `test_vectors/${artifact.part}.npz`));
  const options = await withExternalData(artifact, sessionOptions, (rel) => loadListed(folder, manifest, rel));
  const session = await ort.InferenceSession.create(model, options);
  const thresholds = { ...THRESHOLDS, ...(manifest.validation?.thresholds ?? {}) };
  const rows = [];
  try {
    for (const [caseName, { inputs, outputs }] of casesOf(vectors)) {
      const feeds = {};
      for (const spec of part.inputs) {
        const a = inputs.get(spec.name);
        if (!a) throw new Error(`test vectors lack ${caseName}.input.${spec.name}`);
        feeds[spec.name] = new ort.Tensor(ORT_TYPES[a.dtype], a.data, a.shape);
      }
      const results = await session.run(feeds);
      names.forEach((name, i) => { // outputs by position, named as the manifest names them
        const actual = results[session.outputNames[i]];
        const expected = outputs.get(name);
        const check = compare(expected.data, expected.shape, actual.data, actual.dims, artifact.precision ?? "fp32", thresholds);
        rows.push({ artifact: artifact.path, case: caseName, output: name, shape: [...actual.dims], ...check });
      });
    }
  } finally {
    await session.release?.();
  }
  return rows;
}

/**
 * Every ONNX artifact of the folder on its test vectors. Other formats are listed as not run
 * (the browser has no ExecuTorch or Core ML runtime). A file that is missing or does not match its
 * sha256 throws FileRefusedError before anything runs on it.
 */
export async function validateFolder(folder, ort, { sessionOptions = {}, onRow = () => {}, onArtifact = () => {} } = {}) {
  const manifest = await readManifest(folder);
  const report = { folder: folder.label, model: manifest.model, rows: [], skipped: [] };
  for (const artifact of manifest.artifacts ?? []) {
    if (artifact.format !== "onnx") {
      report.skipped.push({ artifact: artifact.path, format: artifact.format });
      continue;
    }
    onArtifact(artifact.path);
    let rows;
    try {
      rows = await runArtifact(folder, manifest, artifact, ort, sessionOptions);
    } catch (err) {
      if (err.name === "FileRefusedError") throw err;
      rows = [{ artifact: artifact.path, case: "load", output: "-", shape: [], maxAbsError: null, psnrDb: null, status: FAIL,
        note: `${err.name}: ${String(err.message).split("\n")[0]}` }];
    }
    rows.forEach((row) => { report.rows.push(row); onRow(row); });
  }
  report.passed = report.rows.length > 0 && report.rows.every((r) => r.status !== FAIL);
  return report;
}

export const TABLE_HEADER = ["artifact", "case", "output", "shape", "max abs err", "PSNR dB", "result"];

/** One row's cells, formatted as Python's format_table does ("5.96e-08", "139.1", "inf", "FAIL (why)"). */
export function tableRow(r) {
  const number = (v, digits, exp) => (Number.isNaN(v) ? "nan" : exp ? v.toExponential(digits).replace(/e([+-])(\d)$/, "e$10$2") : v.toFixed(digits));
  return [
    r.artifact, r.case, r.output, r.shape.join("x") || "-",
    r.maxAbsError === null ? "-" : number(r.maxAbsError, 2, true),
    r.psnrDb === null ? "-" : (r.psnrDb === Infinity ? "inf" : number(r.psnrDb, 1, false)),
    r.status === FAIL ? `FAIL (${r.note})` : r.status,
  ];
}

/** The same text table as `tomobile validate` (runtime/validate.py:format_table). */
export function formatTable(report) {
  const header = TABLE_HEADER;
  const rows = [header, ...report.rows.map(tableRow)];
  const widths = header.map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  const lines = rows.map((r) => r.map((v, i) => String(v).padEnd(widths[i])).join("  ").trimEnd());
  lines.splice(1, 0, widths.map((w) => "-".repeat(w)).join("  "));
  if (report.skipped.length) {
    lines.push(`not run in the browser: ${report.skipped.map((s) => `${s.artifact} (${s.format})`).join(", ")}`);
  }
  const count = (status) => report.rows.filter((r) => r.status === status).length;
  lines.push(`validation ${report.passed ? "PASSED" : "FAILED"}: ${count(PASS)} pass, ${count(FAIL)} fail, 0 need macOS`);
  return lines.join("\n");
}
