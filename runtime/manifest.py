"""The export folder's schema: the file names (manifest.json, test_vectors/), the default output
folder, the formats and the runtime that runs each (one table), sha256 and sizes of what is
listed, the manifest's one writer, and the rule that keeps every path it names inside the folder
(an absolute path or `..` is refused, as is a symlink that leads out). Its one reader, which
decodes manifest.json into types, is manifest_reader.py."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..graphs.errors import TomobileError

MANIFEST = "manifest.json"
MANIFEST_KEY = "tomobile_manifest"  # present in every manifest `tomobile export` writes
MANIFEST_VERSION = 1
VECTORS_DIR = "test_vectors"  # seeded inputs and eager outputs per part: <stem>.npz
DEFAULT_OUT = Path("tomobile-out")  # where commands write when no folder is given


@dataclass(frozen=True)
class Format:
    """An export format: its manifest name, its artifact's file suffix, and the Linux runtime that
    runs it (the `--runtime` name; None: Core ML, whose predictions need macOS)."""

    name: str
    suffix: str
    runtime: str | None


# The one format/runtime table: manifests, exporters, runners, streaming and benchmarks read it.
FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("onnx", ".onnx", "onnxruntime"),
    Format("coreml", ".mlpackage", None),
    Format("executorch", ".pte", "executorch"),
    Format("coreai", ".aimodel", "coreai"),
)}
RUNTIME_FORMATS: dict[str, str] = {f.runtime: f.name for f in FORMATS.values() if f.runtime}


class ManifestError(TomobileError, ValueError):
    """A folder whose manifest is missing, unreadable or not the shape an export writes."""


class ArtifactError(TomobileError, RuntimeError):
    """An artifact that its runtime cannot run as asked: a method or function the file lacks."""


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


def inside(folder: Path, rel: Any) -> Path:
    """folder / rel, where rel must be a relative path that stays inside `folder`."""
    if not isinstance(rel, str) or not rel or Path(rel).is_absolute() or ".." in Path(rel).parts:
        raise ManifestError(f"{folder / MANIFEST} names the path {rel!r}; paths must be relative and inside the folder")
    path = folder / rel
    root = folder.resolve()
    if path.resolve() != root and root not in path.resolve().parents:
        raise ManifestError(f"{path} leads out of {folder} (a link); artifact paths must stay inside the folder")
    return path
