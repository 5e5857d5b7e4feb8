// A static file server for the page and export folders, on 127.0.0.1 by default.
//   node tools/serve.js [--port 8000] [--host 127.0.0.1] [--isolate] [--mount NAME=DIR ...]
// Serves web_demo/ at / and each export folder DIR at /exports/NAME/. --isolate adds the COOP/COEP
// headers that make the page cross-origin isolated (SharedArrayBuffer: onnxruntime-web threads).
// --host 0.0.0.0 (or a LAN address) lets a phone on the same network open the page; plain http on a
// LAN address is not a secure context (no WebCrypto, no Cache Storage: the page says what that costs).
// Files are sent with an ETag and `Cache-Control: no-cache`: a browser asks again on every visit and
// gets `304 Not Modified` (no body) for what did not change, e.g. the 14 MB wasm file.
// Prints one line, `serving http://HOST:PORT/`, once it listens. Any static host works as well.
// Bad input never stops it: a path that is not valid percent-encoding is answered 400, a path (or a
// link inside a served folder) that leads outside web_demo/ and the --mount folders 404, a file that
// vanishes mid-send ends that response only. Bad options (an --host it cannot listen on, a --port
// that is not 0..65535, a --mount folder that does not exist) are one line on stderr and exit 2.
import { createReadStream, realpathSync, statSync } from "node:fs";
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
    else if (arg === "--port") {
      const text = argv[++i] ?? "";
      options.port = /^[0-9]{1,5}$/.test(text) ? Number(text) : NaN;
      if (!(options.port <= 65535)) throw new Error(`--port wants a port number 0..65535 (0: any free port), got '${text}'`);
    }
    else if (arg === "--host") {
      options.host = argv[++i];
      if (!options.host) throw new Error("--host wants an address: 127.0.0.1 (default), 0.0.0.0 (every interface) or a LAN address");
    }
    else if (arg === "--mount") {
      const [name, dir] = (argv[++i] ?? "").split(/=(.*)/s);
      if (!/^[A-Za-z0-9._-]+$/.test(name) || !dir) throw new Error(`--mount wants NAME=DIR (NAME of letters, digits, . _ -), got ${argv[i]}`);
      let real = null;
      try { real = statSync(dir).isDirectory() ? realpathSync(dir) : null; } catch { real = null; }
      if (!real) throw new Error(`--mount ${name}=${dir}: ${dir} is not a folder`);
      options.mounts.set(name, real);
    } else throw new Error(`unknown argument ${arg}; allowed: --port N, --host H, --isolate, --mount NAME=DIR`);
  }
  return options;
}

class BadRequest extends Error {}

function within(file, base) {
  return file === base || file.startsWith(base + path.sep);
}

/** URL path -> file on disk, or null when it points outside the served folders; BadRequest when
 * the path is not valid percent-encoding. */
function resolvePath(urlPath, mounts) {
  let clean;
  try {
    clean = decodeURIComponent(urlPath.split("?")[0]);
  } catch {
    throw new BadRequest("the path is not valid percent-encoding (%XX with hex digits, UTF-8)");
  }
  const match = /^\/exports\/([^/]+)\/(.*)$/.exec(clean);
  const base = match ? mounts.get(match[1]) : ROOT;
  if (!base) return null;
  const file = path.resolve(base, `./${match ? match[2] : clean}`);
  return within(file, base) ? file : null;
}

/** The file with its links resolved, or null where that leaves every served folder (a link inside a
 * --mount folder to /etc/hostname): links may point from one served folder into another, as the
 * tests' altered copies do, never out of them. */
function servedRealPath(file, roots) {
  let real;
  try { real = realpathSync(file); } catch { return null; }
  return roots.some((root) => within(real, root)) ? real : null;
}

function answer(res, status, headers, text) {
  res.writeHead(status, { ...headers, "Content-Type": "text/plain; charset=utf-8" });
  res.end(`${text}\n`);
}

function respond(req, res, options, roots) {
  const headers = { "Cache-Control": "no-cache" };
  if (options.isolate) {
    Object.assign(headers, { "Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp",
      "Cross-Origin-Resource-Policy": "same-origin" });
  }
  let file;
  try {
    file = resolvePath(req.url, options.mounts);
  } catch (err) {
    if (!(err instanceof BadRequest)) throw err;
    return answer(res, 400, headers, `bad request: ${err.message}`);
  }
  let real = null, stat = null;
  try {
    real = file && servedRealPath(file, roots);
    stat = real && statSync(real);
    if (stat && stat.isDirectory()) {
      file = path.join(file, "index.html");
      real = servedRealPath(file, roots);
      stat = real && statSync(real);
    }
  } catch { stat = null; }
  if (!stat || !stat.isFile() || req.method !== "GET") {
    return answer(res, stat ? 405 : 404, headers, stat ? "only GET" : "not found");
  }
  const etag = `"${stat.size.toString(16)}-${Math.floor(stat.mtimeMs).toString(16)}"`;
  if (req.headers["if-none-match"] === etag) {
    res.writeHead(304, { ...headers, ETag: etag });
    res.end();
    return;
  }
  res.writeHead(200, { ...headers, ETag: etag, "Content-Type": TYPES[path.extname(file)] ?? "application/octet-stream",
    "Content-Length": stat.size });
  createReadStream(real).on("error", () => res.destroy()).pipe(res);  // a file gone mid-send ends this response only
}

function serve(options) {
  const roots = [realpathSync(ROOT), ...options.mounts.values()];
  const server = createServer((req, res) => {
    try {
      respond(req, res, options, roots);
    } catch (err) {  // a bug, not the request's fault: answered, and the server keeps serving
      console.error(`serve: ${req.method} ${req.url}: ${err.message}`);
      if (!res.headersSent) answer(res, 500, {}, "internal error");
      else res.destroy();
    }
  });
  server.on("error", (err) => {
    console.error(`serve: error: cannot listen on ${options.host}:${options.port} (${err.code ?? err.message}); ` +
      "give --host 127.0.0.1 (default), 0.0.0.0 (every interface) or an address of this machine");
    process.exit(2);
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
