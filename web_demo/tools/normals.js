// Prints, per seed, the sha256 of the first COUNT float64 normals (little-endian bytes) and of the
// float32 latent of the same count: tests/web/test_noise_js.py compares them with runtime/noise.py.
//   node tools/normals.js COUNT SEED [SEED ...]   ->  one JSON object per line
import { createHash } from "node:crypto";
import { standardNormals } from "../core/noise.js";

const [count, ...seeds] = process.argv.slice(2);
for (const seed of seeds) {
  const values = standardNormals(seed, Number(count));
  const f64 = createHash("sha256").update(new Uint8Array(values.buffer)).digest("hex");
  const f32 = createHash("sha256").update(new Uint8Array(Float32Array.from(values).buffer)).digest("hex");
  console.log(JSON.stringify({ seed, count: Number(count), float64_sha256: f64, float32_sha256: f32 }));
}
