// Verified files kept between visits in Cache Storage, keyed by the sha256 the manifest lists, so a
// second visit downloads nothing that did not change (a changed file has a new hash, hence a new
// key). Only files that matched their hash are stored; a stored file is hashed again when read.
// Cache Storage exists only in secure contexts (https, localhost, 127.0.0.1): elsewhere openByteCache
// returns null and every visit downloads the files again.

export const CACHE_NAME = "tomobile-files-v1";
const KEY_PREFIX = "/__tomobile__/sha256/"; // never fetched: Cache Storage keys are URLs

export class ByteCache {
  constructor(cache, origin) {
    this.cache = cache;
    this.origin = origin;
  }

  key(sha256) {
    return new URL(`${KEY_PREFIX}${sha256}`, this.origin).href;
  }

  /** The stored bytes for `sha256`, or null. */
  async get(sha256) {
    const response = await this.cache.match(this.key(sha256));
    return response ? new Uint8Array(await response.arrayBuffer()) : null;
  }

  async put(sha256, bytes) {
    const headers = { "Content-Type": "application/octet-stream", "Content-Length": String(bytes.byteLength) };
    await this.cache.put(this.key(sha256), new Response(bytes, { headers }));
  }

  /** Drops the stored bytes of a hash (one that no longer verifies). */
  async delete(sha256) {
    await this.cache.delete(this.key(sha256));
  }
}

/** The page's ByteCache, or null where Cache Storage is missing (not a secure context) or refused. */
export async function openByteCache(scope = globalThis) {
  if (!scope.caches || !scope.isSecureContext) return null;
  try {
    return new ByteCache(await scope.caches.open(CACHE_NAME), scope.location.origin);
  } catch {
    return null; // e.g. storage blocked for this origin
  }
}

/** {files, bytes} stored now; deleting the whole cache is clearByteCache. */
export async function cacheUsage(scope = globalThis) {
  if (!scope.caches) return { files: 0, bytes: 0 };
  const cache = await scope.caches.open(CACHE_NAME);
  let bytes = 0;
  const keys = await cache.keys();
  for (const request of keys) {
    const response = await cache.match(request);
    bytes += Number(response?.headers.get("Content-Length") ?? 0);
  }
  return { files: keys.length, bytes };
}

export async function clearByteCache(scope = globalThis) {
  return scope.caches ? scope.caches.delete(CACHE_NAME) : false;
}
