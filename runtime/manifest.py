"""The export folder's schema, in one place: the file names (manifest.json, test_vectors/), the
default output folder, sha256 and sizes of what is listed, and the manifest's one writer and one
reader. The reader checks the shape `tomobile export` writes and keeps every path it names inside
the folder (an absolute path or `..` is refused, as is a symlink that leads out). Export,
validation, generation, benchmarks and the apps all read the folder through it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..graphs.errors import TomobileError

MANIFEST = "manifest.json"
MANIFEST_KEY = "tomobile_manifest"  # present in every manifest `tomobile export` writes
MANIFEST_VERSION = 1
VECTORS_DIR = "test_vectors"  # seeded inputs and eager outputs per part: <stem>.npz
DEFAULT_OUT = Path("tomobile-out")  # where commands write when no folder is given
FORMATS = ("onnx", "coreml", "executorch", "coreai")  # the formats an export folder may list


class ManifestError(TomobileError, ValueError):
    """A folder whose manifest is missing, unreadable or not the shape an export writes."""


def sha256_path(path: Path) -> str:
    """sha256 of a file, or of a folder (.mlpackage) as its sorted relative paths and contents."""
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        if path.is_dir():
            h.update(str(f.relative_to(path)).encode())
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def size_bytes(path: Path) -> int:
    """Bytes of a file, or of every file under a folder."""
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def file_record(path: Path) -> dict:
    """{path (relative to the export folder), sha256, bytes} of one written file."""
    return {"path": path.name, "sha256": sha256_path(path), "bytes": size_bytes(path)}


def new_manifest(model: str, extra: dict, *, precision: str, quantize: str | None, backend: str | None,
                 parts: dict, artifacts: list[dict], files: dict[str, str], test_vectors: dict[str, str],
                 tools: dict[str, str], weight_groups: dict | None = None) -> dict:
    """The manifest of an export: `extra` is the bundle's own entries (merge spec, pipeline, split
    sequences); precision, quantize and backend are what was asked, each artifact says what it got.
    `weight_groups`: parts that share one weights file (export/shared.py, docs/shared_weights.md)."""
    return {MANIFEST_KEY: MANIFEST_VERSION, "model": model, **extra, "precision": precision, "quantize": quantize,
            "backend": backend, "parts": parts, "artifacts": artifacts,
            **({"weight_groups": weight_groups} if weight_groups else {}), "files": files,
            "test_vectors": test_vectors, "tools": tools}


def write_manifest(folder: Path, manifest: dict) -> None:
    """Write folder/manifest.json whole (a temporary file renamed over it). JSON has no NaN or
    Infinity (the native engine, the page's JSON.parse and the apps refuse them): a non-finite
    number anywhere is a ValueError here, before anything is written."""
    text = json.dumps(manifest, indent=2, allow_nan=False) + "\n"
    tmp = folder / f".{MANIFEST}.tmp"
    tmp.write_text(text)
    tmp.replace(folder / MANIFEST)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (a manifest holds finite numbers only)")


def parse_manifest_text(text: str) -> Any:
    """manifest.json's text as JSON, as strictly as tomobile-native reads it: NaN and Infinity are
    refused (Python's json takes them), and so is nesting too deep for the parser (a RecursionError
    otherwise); ValueError either way."""
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError("it nests lists or objects too deeply for a manifest") from None


def is_export_folder(folder: Path) -> bool:
    """Whether `folder` holds a manifest that `tomobile export` wrote (unchecked beyond its key)."""
    try:
        data = parse_manifest_text((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and MANIFEST_KEY in data


def load_manifest(folder: Path) -> dict:
    """The checked manifest of `folder` (ManifestError saying what is wrong otherwise)."""
    path = folder / MANIFEST
    if not path.is_file():
        raise ManifestError(f"{folder} has no {MANIFEST}: not a tomobile export folder")
    try:
        data = parse_manifest_text(path.read_text())
    except (OSError, ValueError) as err:
        raise ManifestError(f"{path} is not valid JSON: {err}") from None
    check_manifest(folder, data)
    return data


def entry_name(entry: dict) -> str | None:
    """An artifact (or split part file) entry's method (ExecuTorch) or function (Core ML, Core AI)
    inside a file that several parts share (docs/contract.md); None for a one-part file."""
    return entry.get("method") or entry.get("function")


def file_records(manifest: dict) -> list[tuple[str, str]]:
    """Every (relative path, sha256) the manifest holds, in its order: artifacts and the files beside
    them, `files`, test vectors, and the split parts' files of every format. A file several entries
    share is listed once per entry (a checksum pass hashes it once and checks every digest)."""
    records = []
    for a in manifest.get("artifacts", []):
        records.append((a["path"], a["sha256"]))
        records += [(a[key]["path"], a[key]["sha256"]) for key in ("weights", "external_data") if key in a]
    records += list(manifest.get("files", {}).items())
    records += [(f"{VECTORS_DIR}/{stem}.npz", digest) for stem, digest in manifest.get("test_vectors", {}).items()]
    for entry in manifest.get("split", {}).get("parts", []):
        for rec in entry.get("files", {}).values():
            records += [(f["path"], f["sha256"]) for f in (rec, rec.get("weights")) if f is not None]
    return records


def inside(folder: Path, rel: Any) -> Path:
    """folder / rel, where rel must be a relative path that stays inside `folder`."""
    if not isinstance(rel, str) or not rel or Path(rel).is_absolute() or ".." in Path(rel).parts:
        raise ManifestError(f"{folder / MANIFEST} names the path {rel!r}; paths must be relative and inside the folder")
    path = folder / rel
    root = folder.resolve()
    if path.resolve() != root and root not in path.resolve().parents:
        raise ManifestError(f"{path} leads out of {folder} (a link); artifact paths must stay inside the folder")
    return path


def _require(ok: bool, folder: Path, what: str) -> None:
    if not ok:
        raise ManifestError(f"{folder / MANIFEST} is not a tomobile manifest: {what}")


def _check_io(folder: Path, stem: str, part: Any) -> None:
    _require(isinstance(part, dict), folder, f"parts[{stem!r}] is not an object")
    for side in ("inputs", "outputs"):
        specs = part.get(side)
        _require(isinstance(specs, list) and bool(specs), folder, f"parts[{stem!r}] has no {side!r} list")
        for spec in specs:
            _require(isinstance(spec, dict) and isinstance(spec.get("name"), str)
                     and isinstance(spec.get("shape"), list)
                     and all(isinstance(d, int) and not isinstance(d, bool) for d in spec["shape"]),
                     folder, f"parts[{stem!r}].{side} entries need a 'name' and an integer 'shape'")


def _check_record(folder: Path, rec: Any, where: str) -> None:
    _require(isinstance(rec, dict) and isinstance(rec.get("path"), str) and isinstance(rec.get("sha256"), str),
             folder, f"{where} needs a 'path' and a 'sha256' string")
    inside(folder, rec["path"])


def _check_split(folder: Path, split: Any, parts: dict) -> None:
    """The split entry as tomobile-native decodes it (runtime/native/src/manifest.cpp): part files
    with their records and sizes, sequences that are not empty and name parts that exist."""
    _require(isinstance(split, dict) and isinstance(split.get("parts"), list) and bool(split["parts"]), folder,
             "'split' has no 'parts' list")
    names = []
    for i, entry in enumerate(split["parts"]):
        where = f"split.parts[{i}]"
        _require(isinstance(entry, dict) and isinstance(entry.get("name"), str), folder, f"{where} has no 'name' string")
        _check_io(folder, entry["name"], entry)
        files = entry.get("files")
        _require(isinstance(files, dict) and bool(files), folder, f"{where} has no 'files' object")
        for fmt, rec in files.items():
            _require(fmt in FORMATS, folder, f"{where}.files has format {fmt!r}; formats: {', '.join(FORMATS)}")
            _check_record(folder, rec, f"{where}.files.{fmt}")
            if "weights" in rec:
                _check_record(folder, rec["weights"], f"{where}.files.{fmt}.weights")
            total = rec.get("total_bytes")
            _require(isinstance(total, int) and not isinstance(total, bool) and total >= 0, folder,
                     f"{where}.files.{fmt}.total_bytes is {total!r}, not a non-negative integer")
        names.append(entry["name"])
    sequences = split.get("sequences")
    _require(isinstance(sequences, dict) and bool(sequences), folder, "split.sequences is missing or empty")
    for variant, seq in sequences.items():
        _require(variant in parts, folder, f"split.sequences.{variant}: variant {variant!r} is not a part in 'parts'")
        _require(isinstance(seq, list) and bool(seq), folder, f"split.sequences.{variant} is empty or not a list")
        for name in seq:
            _require(name in names, folder, f"split.sequences.{variant} names part {name!r}, which split.parts lacks")


def check_manifest(folder: Path, manifest: Any) -> None:
    """The keys validation reads, with the types `tomobile export` writes."""
    _require(isinstance(manifest, dict), folder, f"it holds a JSON {type(manifest).__name__}, not an object")
    _require(MANIFEST_KEY in manifest, folder, f"no {MANIFEST_KEY!r} key")
    parts = manifest.get("parts")
    _require(isinstance(parts, dict) and bool(parts), folder, "'parts' is missing or empty")
    for stem, part in parts.items():
        _check_io(folder, stem, part)
    artifacts = manifest.get("artifacts")
    _require(isinstance(artifacts, list) and bool(artifacts), folder, "'artifacts' is missing or empty")
    for i, a in enumerate(artifacts):
        _require(isinstance(a, dict), folder, f"artifacts[{i}] is not an object")
        for key in ("format", "part", "path", "sha256"):
            _require(isinstance(a.get(key), str), folder, f"artifacts[{i}] has no {key!r} string")
        _require(a["format"] in FORMATS, folder, f"artifacts[{i}] has format {a['format']!r}; "
                                                 f"formats: {', '.join(FORMATS)}")
        _require(a["part"] in parts, folder, f"artifacts[{i}] names part {a['part']!r}, which 'parts' lacks")
        inside(folder, a["path"])
    for key in ("test_vectors", "files"):
        table = manifest.get(key, {})
        _require(isinstance(table, dict) and all(isinstance(v, str) for v in table.values()), folder,
                 f"{key!r} must map names to sha256 strings")
    _require(set(parts) <= set(manifest.get("test_vectors", {})), folder, "a part has no 'test_vectors' entry")
    for name in manifest.get("files", {}):
        inside(folder, name)
    if "split" in manifest:
        _check_split(folder, manifest["split"], parts)
