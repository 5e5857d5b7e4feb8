// An export folder, read through its manifest.json: every file the app loads is checked against
// the sha256 the export wrote, and a missing or altered file is refused by name.
// Mirrors: Kotlin Manifest.kt, Swift Manifest.swift.
import { sha256HexPlain } from "./sha256.js";

export class FileRefusedError extends Error {
  constructor(relPath, reason) {
    super(`${relPath}: ${reason}`);
    this.name = "FileRefusedError";
    this.relPath = relPath;
  }
}

/**
 * A folder behind a URL (a static host, or the test server). read(relPath) -> Uint8Array.
 * `cache` (core/cache.js ByteCache, or null) keeps verified files between visits; `downloaded`
 * counts the bytes this folder fetched, `fromCache` those verifyFile took from the cache.
 */
export class UrlFolder {
  constructor(baseUrl, cache = null) {
    this.base = baseUrl.endsWith("/") ? baseUrl : `${baseUrl}/`;
    this.label = this.base;
    this.cache = cache;
    this.downloaded = 0;
    this.fromCache = 0;
  }

  async read(relPath) {
    let response;
    try {
      response = await fetch(new URL(relPath, new URL(this.base, globalThis.location?.href)), { cache: "no-store" });
    } catch (err) {
      throw new FileRefusedError(relPath, `could not be fetched (${err.message})`);
    }
    if (!response.ok) throw new FileRefusedError(relPath, `missing (HTTP ${response.status})`);
    const bytes = new Uint8Array(await response.arrayBuffer());
    this.downloaded += bytes.byteLength;
    return bytes;
  }
}

/**
 * A folder picked in the page (<input type=file webkitdirectory>), files picked flat, or name -> bytes.
 * Phone browsers that ignore webkitdirectory hand over bare names ("text_encoder.npz", not
 * "test_vectors/text_encoder.npz"): a path the map lacks is found by its last component when exactly
 * one picked file has that name (the sha256 check still decides whether it is the right file).
 */
export class MapFolder {
  constructor(label, files) {
    this.label = label;
    this.files = files; // Map relPath -> File | Blob | Uint8Array
    this.byName = new Map(); // base name -> relPath, null when two files share it
    for (const relPath of files.keys()) {
      const name = relPath.split("/").at(-1);
      this.byName.set(name, this.byName.has(name) ? null : relPath);
    }
  }

  static fromFileList(fileList) {
    return MapFolder.fromPaths(Array.from(fileList, (file) => [file.webkitRelativePath || file.name, file]));
  }

  /** [[path, file]] as a picker gives them: "root/rel/path" from a folder pick, bare names from a flat one. */
  static fromPaths(pairs) {
    const files = new Map();
    let root = "";
    for (const [relPath, file] of pairs) {
      const parts = relPath.split("/");
      if (parts.length > 1) root = parts[0];
      files.set(parts.length > 1 ? parts.slice(1).join("/") : parts[0], file);
    }
    return new MapFolder(root || `${files.size} picked files`, files);
  }

  async read(relPath) {
    const entry = this.files.get(relPath) ?? this.files.get(this.byName.get(relPath.split("/").at(-1)));
    if (entry === undefined) throw new FileRefusedError(relPath, "missing from the folder");
    return entry instanceof Uint8Array ? entry : new Uint8Array(await entry.arrayBuffer());
  }
}

/** Lowercase hex SHA-256: WebCrypto where the page is a secure context, plain JavaScript otherwise. */
export async function sha256Hex(bytes) {
  const subtle = globalThis.crypto?.subtle;
  if (subtle) {
    const hash = await subtle.digest("SHA-256", bytes);
    return Array.from(new Uint8Array(hash), (b) => b.toString(16).padStart(2, "0")).join("");
  }
  return sha256HexPlain(bytes);
}

/** Digest of a tensor: sha256 of its float32 little-endian bytes in C order (docs/contract.md). */
export async function digestFloat32(array) {
  const f32 = array instanceof Float32Array ? array : Float32Array.from(array);
  const bytes = new Uint8Array(f32.length * 4);
  const view = new DataView(bytes.buffer);
  f32.forEach((v, i) => view.setFloat32(4 * i, v, true));
  return sha256Hex(bytes);
}

export async function readManifest(folder) {
  const bytes = await folder.read("manifest.json");
  let manifest;
  try {
    manifest = JSON.parse(new TextDecoder().decode(bytes));
  } catch (err) {
    throw new FileRefusedError("manifest.json", `is not valid JSON (${err.message})`);
  }
  if (manifest.tomobile_manifest !== 1) throw new FileRefusedError("manifest.json", "is not a tomobile manifest (tomobile_manifest != 1)");
  return manifest;
}

/** relPath -> sha256 for every file the manifest lists: artifacts, files, test vectors. */
export function listedFiles(manifest) {
  const listed = new Map();
  for (const a of manifest.artifacts ?? []) {
    listed.set(a.path, a.sha256);
    if (a.weights) listed.set(a.weights.path, a.weights.sha256); // external data, shared by a weight group
  }
  for (const [name, hash] of Object.entries(manifest.files ?? {})) listed.set(name, hash);
  for (const [stem, hash] of Object.entries(manifest.test_vectors ?? {})) listed.set(`test_vectors/${stem}.npz`, hash);
  return listed;
}

/** The file's bytes, after checking them against `expectedSha256`; refuses a missing or altered file. */
export async function verifyFile(folder, relPath, expectedSha256) {
  if (!expectedSha256) throw new FileRefusedError(relPath, "is not listed in manifest.json");
  const cached = await folder.cache?.get(expectedSha256);
  if (cached) {
    if (await sha256Hex(cached) === expectedSha256) {
      folder.fromCache += cached.byteLength;
      return cached;
    }
    await folder.cache.delete(expectedSha256); // damaged in storage: fetch it again
  }
  const bytes = await folder.read(relPath);
  const actual = await sha256Hex(bytes);
  if (actual !== expectedSha256) {
    throw new FileRefusedError(relPath, `altered: sha256 ${actual.slice(0, 12)}... does not match the manifest's ${expectedSha256.slice(0, 12)}...`);
  }
  await folder.cache?.put(expectedSha256, bytes).catch(() => {}); // full storage: run without keeping it
  return bytes;
}

/** verifyFile with the hash looked up in the manifest. */
/**
 * Session options for an ONNX artifact: its external data file (`artifact.weights`, one file the
 * graphs of a weight group share, docs/shared_weights.md), verified, as onnxruntime-web's externalData.
 * `read(relPath)` returns the verified bytes (callers may cache them across the group's graphs).
 */
export async function withExternalData(artifact, sessionOptions, read) {
  if (!artifact.weights) return sessionOptions;
  return { ...sessionOptions, externalData: [{ path: artifact.weights.path, data: await read(artifact.weights.path) }] };
}

export function loadListed(folder, manifest, relPath) {
  return verifyFile(folder, relPath, listedFiles(manifest).get(relPath));
}
