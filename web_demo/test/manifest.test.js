// manifest.js and npz.js: sha256 (WebCrypto and the plain fallback), refusal of missing and altered
// files by name, and the test vectors read from the export's .npz files.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";
import { FileRefusedError, listedFiles, MapFolder, sha256Hex, verifyFile } from "../core/manifest.js";
import { readNpz } from "../core/npz.js";
import { sha256HexPlain } from "../core/sha256.js";
import { manifest, read } from "./contract.js";

test("plain SHA-256 equals node's for lengths around the block edges", async () => {
  for (const n of [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 1000, 100003]) {
    const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 31 + 7) & 255);
    const want = createHash("sha256").update(bytes).digest("hex");
    assert.equal(sha256HexPlain(bytes), want, `length ${n}`);
    assert.equal(await sha256Hex(bytes), want);
  }
});

test("a missing or altered file is refused, naming it", async () => {
  const good = Uint8Array.of(1, 2, 3);
  const hash = createHash("sha256").update(good).digest("hex");
  const folder = new MapFolder("x", new Map([["model.onnx", Uint8Array.of(1, 2, 4)]]));
  await assert.rejects(verifyFile(folder, "model.onnx", hash), (err) => err instanceof FileRefusedError && /model\.onnx: altered/.test(err.message));
  await assert.rejects(verifyFile(folder, "other.onnx", hash), /other\.onnx: missing/);
  await assert.rejects(verifyFile(folder, "model.onnx", undefined), /model\.onnx: is not listed/);
  assert.deepEqual(await verifyFile(new MapFolder("x", new Map([["model.onnx", good]])), "model.onnx", hash), good);
});

test("every part's test vectors parse with the manifest's names and shapes", async () => {
  const listed = listedFiles(manifest);
  for (const [part, spec] of Object.entries(manifest.parts)) {
    const arrays = await readNpz(await read(`test_vectors/${part}.npz`));
    assert.ok(listed.has(`test_vectors/${part}.npz`));
    for (const io of spec.inputs) assert.deepEqual(arrays.get(`seeded.input.${io.name}`).shape, io.shape, `${part} ${io.name}`);
    for (const io of spec.outputs) {
      const a = arrays.get(`seeded.output.${io.name}`);
      assert.deepEqual(a.shape, io.shape);
      assert.ok(a.data instanceof Float32Array && a.data.length === io.shape.reduce((x, y) => x * y, 1));
    }
  }
});
