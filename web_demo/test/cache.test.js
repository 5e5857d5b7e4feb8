// Flat file picking (bare names find test_vectors/* by the manifest's path) and the sha256-keyed
// file cache (core/cache.js over a Cache Storage stand-in): a cached file is used only while it
// still matches its hash; a fetched file is stored only after it matched.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";
import { ByteCache } from "../core/cache.js";
import { MapFolder, verifyFile } from "../core/manifest.js";

const sha = (bytes) => createHash("sha256").update(bytes).digest("hex");

/** The part of the Cache interface ByteCache uses, in memory. */
class MemoryCache {
  constructor() { this.entries = new Map(); }
  async match(url) { const b = this.entries.get(url); return b ? new Response(b) : undefined; }
  async put(url, response) { this.entries.set(url, new Uint8Array(await response.arrayBuffer())); }
  async delete(url) { return this.entries.delete(url); }
}

/** A folder that counts its reads, with a ByteCache, as UrlFolder has. */
function countingFolder(files, cache) {
  const folder = new MapFolder("served", new Map(Object.entries(files)));
  const read = folder.read.bind(folder);
  Object.assign(folder, { cache, reads: 0, fromCache: 0, read: async (p) => { folder.reads += 1; return read(p); } });
  return folder;
}

test("files picked flat are found by the manifest's path; a name two files share is not guessed", async () => {
  const npz = Uint8Array.of(9, 8, 7);
  const flat = MapFolder.fromPaths([["manifest.json", Uint8Array.of(1)], ["text_encoder.npz", npz], ["text_encoder.onnx", Uint8Array.of(2)]]);
  assert.equal(flat.label, "3 picked files");
  assert.deepEqual(await verifyFile(flat, "test_vectors/text_encoder.npz", sha(npz)), npz);
  const picked = MapFolder.fromPaths([["exp/a/x.npz", Uint8Array.of(1)], ["exp/b/x.npz", Uint8Array.of(2)]]);
  assert.equal(picked.label, "exp");
  await assert.rejects(picked.read("c/x.npz"), /c\/x\.npz: missing/);
  assert.deepEqual(await picked.read("a/x.npz"), Uint8Array.of(1));
});

test("a verified file is kept by its sha256 and read from the cache on the next visit", async () => {
  const bytes = Uint8Array.from({ length: 1000 }, (_, i) => i & 255);
  const store = new MemoryCache();
  const first = countingFolder({ "m.onnx": bytes }, new ByteCache(store, "http://127.0.0.1:8000"));
  assert.deepEqual(await verifyFile(first, "m.onnx", sha(bytes)), bytes);
  assert.equal(first.reads, 1);
  assert.deepEqual([...store.entries.keys()], [`http://127.0.0.1:8000/__tomobile__/sha256/${sha(bytes)}`]);
  const second = countingFolder({ "m.onnx": bytes }, new ByteCache(store, "http://127.0.0.1:8000"));
  assert.deepEqual(await verifyFile(second, "m.onnx", sha(bytes)), bytes);
  assert.equal(second.reads, 0);
  assert.equal(second.fromCache, 1000);
});

test("an altered download is not cached; a damaged cache entry is fetched again", async () => {
  const good = Uint8Array.of(1, 2, 3);
  const store = new MemoryCache();
  const altered = countingFolder({ "m.onnx": Uint8Array.of(1, 2, 4) }, new ByteCache(store, "http://h"));
  await assert.rejects(verifyFile(altered, "m.onnx", sha(good)), /m\.onnx: altered/);
  assert.equal(store.entries.size, 0);
  store.entries.set(`http://h/__tomobile__/sha256/${sha(good)}`, Uint8Array.of(0));
  const folder = countingFolder({ "m.onnx": good }, new ByteCache(store, "http://h"));
  assert.deepEqual(await verifyFile(folder, "m.onnx", sha(good)), good);
  assert.equal(folder.reads, 1);
  assert.deepEqual(store.entries.get(`http://h/__tomobile__/sha256/${sha(good)}`), good);
});
