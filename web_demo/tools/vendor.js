// Copies the files the page loads at run time from node_modules into vendor/ (served beside
// index.html; nothing comes from a CDN). Run by `npm run vendor` (make test-web does it after npm ci).
import { copyFileSync, mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const FILES = {
  "onnxruntime-web/dist/ort.wasm.min.mjs": "ort.wasm.min.mjs",
  "onnxruntime-web/dist/ort-wasm-simd-threaded.mjs": "ort-wasm-simd-threaded.mjs",
  "onnxruntime-web/dist/ort-wasm-simd-threaded.wasm": "ort-wasm-simd-threaded.wasm",
  // ?backend=webgpu only: the WebGPU build and the (asyncify) wasm it loads.
  "onnxruntime-web/dist/ort.webgpu.min.mjs": "ort.webgpu.min.mjs",
  "onnxruntime-web/dist/ort-wasm-simd-threaded.asyncify.mjs": "ort-wasm-simd-threaded.asyncify.mjs",
  "onnxruntime-web/dist/ort-wasm-simd-threaded.asyncify.wasm": "ort-wasm-simd-threaded.asyncify.wasm",
  "@huggingface/tokenizers/dist/tokenizers.min.mjs": "tokenizers.min.mjs",
  "@huggingface/tokenizers/LICENSE": "LICENSE.huggingface-tokenizers",
};

mkdirSync(path.join(root, "vendor"), { recursive: true });
for (const [from, to] of Object.entries(FILES)) {
  copyFileSync(path.join(root, "node_modules", from), path.join(root, "vendor", to));
}
console.log(`vendor/: ${Object.values(FILES).join(", ")}`);
