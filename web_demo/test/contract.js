// The export folder the node tests read: TOMOBILE_EXPORT=<a `tomobile export video-dit-tiny` folder>
// (tests/web/test_node_unit.py sets it). Files are read through the manifest, sha256-checked.
import { readFile } from "node:fs/promises";
import path from "node:path";
import { listedFiles, MapFolder, readManifest, verifyFile } from "../core/manifest.js";

export const exportDir = process.env.TOMOBILE_EXPORT;
if (!exportDir) {
  throw new Error("set TOMOBILE_EXPORT to a folder written by `tomobile export video-dit-tiny --format onnx`");
}

/** A MapFolder over the export directory on disk (files read lazily). */
class DiskFolder extends MapFolder {
  constructor(dir) {
    super(dir, new Map());
    this.dir = dir;
  }

  async read(relPath) {
    return new Uint8Array(await readFile(path.join(this.dir, relPath)));
  }
}

export const folder = new DiskFolder(exportDir);
export const manifest = await readManifest(folder);
const listed = listedFiles(manifest);
export const read = (relPath) => verifyFile(folder, relPath, listed.get(relPath));
export const contract = JSON.parse(new TextDecoder().decode(await read("test_vectors/contract.json")));
export const replayBytes = await read(`test_vectors/${contract.replay_file}`);

/** The recorded velocity of one replay call (a copy, float32). */
export function velocityAt(call, count) {
  return new Float32Array(replayBytes.buffer.slice(replayBytes.byteOffset + call.output_offset,
    replayBytes.byteOffset + call.output_offset + 4 * count));
}
