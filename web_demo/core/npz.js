// numpy's .npz (a zip of .npy files; np.savez stores them uncompressed, with zip64 extra fields)
// -> Map name -> {dtype, shape, data}. Deflated members (np.savez_compressed) are inflated with
// DecompressionStream where the platform has it.

const DTYPES = {
  "<f4": Float32Array, "<f8": Float64Array, "<i8": BigInt64Array, "<i4": Int32Array,
  "<u8": BigUint64Array, "<u4": Uint32Array, "|u1": Uint8Array, "|i1": Int8Array, "|b1": Uint8Array,
};

/** One .npy file -> {dtype, shape, data} (C order, little-endian dtypes only). */
export function parseNpy(bytes) {
  const magic = String.fromCharCode(...bytes.subarray(1, 6));
  if (bytes[0] !== 0x93 || magic !== "NUMPY") throw new Error("not a .npy file");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const major = bytes[6];
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  const header = new TextDecoder().decode(bytes.subarray(start, start + headerLength));
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1] === "True";
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1] ?? "";
  const shape = shapeText.split(",").map((s) => s.trim()).filter(Boolean).map(Number);
  const Type = DTYPES[descr];
  if (!Type) throw new Error(`unsupported .npy dtype ${descr}; supported: ${Object.keys(DTYPES).join(", ")}`);
  if (fortran && shape.length > 1) throw new Error("Fortran-order .npy arrays are not supported");
  const count = shape.reduce((a, b) => a * b, 1);
  const offset = start + headerLength;
  const raw = bytes.slice(offset, offset + count * Type.BYTES_PER_ELEMENT); // a copy, aligned
  return { dtype: descr, shape, data: new Type(raw.buffer, 0, count) };
}

async function inflateRaw(bytes) {
  if (typeof DecompressionStream === "undefined") throw new Error("compressed .npz members need DecompressionStream");
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate-raw"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function zip64Sizes(view, extraStart, extraLength, entry) {
  for (let p = extraStart; p + 4 <= extraStart + extraLength;) {
    const id = view.getUint16(p, true);
    const size = view.getUint16(p + 2, true);
    if (id === 0x0001) {
      let q = p + 4;
      const next = () => { const v = Number(view.getBigUint64(q, true)); q += 8; return v; };
      if (entry.size === 0xffffffff) entry.size = next();
      if (entry.compressedSize === 0xffffffff) entry.compressedSize = next();
      if (entry.offset === 0xffffffff) entry.offset = next();
    }
    p += 4 + size;
  }
}

/** The zip's central directory: [{name, method, compressedSize, size, offset}]. */
function centralDirectory(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let eocd = -1;
  for (let p = bytes.length - 22; p >= Math.max(0, bytes.length - 22 - 65535); p--) {
    if (view.getUint32(p, true) === 0x06054b50) { eocd = p; break; }
  }
  if (eocd < 0) throw new Error("not a zip file (no end of central directory)");
  let count = view.getUint16(eocd + 10, true);
  let dirOffset = view.getUint32(eocd + 16, true);
  if (dirOffset === 0xffffffff || count === 0xffff) { // zip64 end of central directory
    const locator = eocd - 20;
    const zip64 = Number(view.getBigUint64(locator + 8, true));
    count = Number(view.getBigUint64(zip64 + 32, true));
    dirOffset = Number(view.getBigUint64(zip64 + 48, true));
  }
  const entries = [];
  for (let p = dirOffset, i = 0; i < count; i++) {
    if (view.getUint32(p, true) !== 0x02014b50) throw new Error("corrupt zip central directory");
    const nameLength = view.getUint16(p + 28, true);
    const extraLength = view.getUint16(p + 30, true);
    const commentLength = view.getUint16(p + 32, true);
    const entry = {
      name: new TextDecoder().decode(bytes.subarray(p + 46, p + 46 + nameLength)),
      method: view.getUint16(p + 10, true),
      compressedSize: view.getUint32(p + 20, true),
      size: view.getUint32(p + 24, true),
      offset: view.getUint32(p + 42, true),
    };
    zip64Sizes(view, p + 46 + nameLength, extraLength, entry);
    entries.push(entry);
    p += 46 + nameLength + extraLength + commentLength;
  }
  return { view, entries };
}

/** .npz bytes -> Map of array name (without .npy) -> {dtype, shape, data}. */
export async function readNpz(bytes) {
  const { view, entries } = centralDirectory(bytes);
  const arrays = new Map();
  for (const entry of entries) {
    const local = entry.offset;
    if (view.getUint32(local, true) !== 0x04034b50) throw new Error(`corrupt zip entry ${entry.name}`);
    const dataStart = local + 30 + view.getUint16(local + 26, true) + view.getUint16(local + 28, true);
    let member = bytes.subarray(dataStart, dataStart + entry.compressedSize);
    if (entry.method === 8) member = await inflateRaw(member);
    else if (entry.method !== 0) throw new Error(`zip member ${entry.name} uses compression method ${entry.method}`);
    arrays.set(entry.name.replace(/\.npy$/, ""), parseNpy(member));
  }
  return arrays;
}
