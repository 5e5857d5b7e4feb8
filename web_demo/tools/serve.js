// A static file server for the page and export folders, on 127.0.0.1 by default.
//   node tools/serve.js [--port 8000] [--host 127.0.0.1] [--isolate] [--mount NAME=DIR ...]
// Serves web_demo/ at / and each export folder DIR at /exports/NAME/. --isolate adds the COOP/COEP
// headers that make the page cross-origin isolated (SharedArrayBuffer: onnxruntime-web threads).
// --host 0.0.0.0 (or a LAN address) lets a phone on the same network open the page; plain http on a
// LAN address is not a secure context (no WebCrypto, no Cache Storage: the page says what that costs).
// Files are sent with an ETag and `Cache-Control: no-cache`: a browser asks again on every visit and
// gets `304 Not Modified` (no body) for what did not change, e.g. the 14 MB wasm file.
// Prints one line, `serving http://HOST:PORT/`, once it listens. Any static host works as well.
import { createReadStream, statSync } from "node:fs";
import { createServer } from "node:http";
import { networkInterfaces } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const TYPES = {
  ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css",
  ".json": "application/json", ".wasm": "application/wasm", ".png": "image/png", ".txt": "text/plain; charset=utf-8",
};

function parseArgs(argv) {
  const options = { port: 8000, host: "127.0.0.1", isolate: false, mounts: new Map() };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--isolate") options.isolate = true;
    else if (arg === "--port") options.port = Number(argv[++i]);
    else if (arg === "--host") {
      options.host = argv[++i];
      if (!options.host) throw new Error("--host wants an address: 127.0.0.1 (default), 0.0.0.0 (every interface) or a LAN address");
    }
    else if (arg === "--mount") {
      const [name, dir] = argv[++i].split(/=(.*)/s);
      if (!/^[A-Za-z0-9._-]+$/.test(name) || !dir) throw new Error(`--mount wants NAME=DIR (NAME of letters, digits, . _ -), got ${argv[i]}`);
      options.mounts.set(name, path.resolve(dir));
    } else throw new Error(`unknown argument ${arg}; allowed: --port N, --host H, --isolate, --mount NAME=DIR`);
  }
  return options;
}

/** URL path -> file on disk, or null when it points outside the served folders. */
function resolvePath(urlPath, mounts) {
  const clean = decodeURIComponent(urlPath.split("?")[0]);
  const match = /^\/exports\/([^/]+)\/(.*)$/.exec(clean);
  const base = match ? mounts.get(match[1]) : ROOT;
  if (!base) return null;
  const file = path.resolve(base, `./${match ? match[2] : clean}`);
  if (file !== base && !file.startsWith(base + path.sep)) return null;
  return file;
}

function serve(options) {
  const server = createServer((req, res) => {
    const headers = { "Cache-Control": "no-cache" };
    if (options.isolate) {
      Object.assign(headers, { "Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp",
        "Cross-Origin-Resource-Policy": "same-origin" });
    }
    let file = resolvePath(req.url, options.mounts);
    let stat = null;
    try {
      stat = file && statSync(file);
      if (stat && stat.isDirectory()) { file = path.join(file, "index.html"); stat = statSync(file); }
    } catch { stat = null; }
    if (!stat || !stat.isFile() || req.method !== "GET") {
      res.writeHead(stat ? 405 : 404, { ...headers, "Content-Type": "text/plain" });
      res.end(stat ? "only GET\n" : "not found\n");
      return;
    }
    const etag = `"${stat.size.toString(16)}-${Math.floor(stat.mtimeMs).toString(16)}"`;
    if (req.headers["if-none-match"] === etag) {
      res.writeHead(304, { ...headers, ETag: etag });
      res.end();
      return;
    }
    res.writeHead(200, { ...headers, ETag: etag, "Content-Type": TYPES[path.extname(file)] ?? "application/octet-stream",
      "Content-Length": stat.size });
    createReadStream(file).pipe(res);
  });
  server.listen(options.port, options.host, () => {
    const { port } = server.address();
    console.log(`serving http://${options.host}:${port}/`);
    if (options.host === "0.0.0.0" || options.host === "::") {
      const lan = Object.values(networkInterfaces()).flat().filter((a) => a.family === "IPv4" && !a.internal);
      for (const a of lan) console.log(`  on the LAN: http://${a.address}:${port}/ (not a secure context: see the page's note)`);
    }
  });
  return server;
}

try {
  serve(parseArgs(process.argv.slice(2)));
} catch (err) {
  console.error(`serve: error: ${err.message}`);
  process.exit(2);
}
