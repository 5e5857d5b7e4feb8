"""manifest.json, decoded once into types: `read_manifest(folder) -> Manifest`.

The decoder checks every type, every required field and every reference (an artifact's part and
weight group, a weight group's parts, a split sequence's variant and parts, an int8 companion's
fp32 file) and keeps every path inside the folder (manifest.inside): what a reader holds exists.
Anything else is one ManifestError line. Validation, generation, streaming, benchmarks and the
CLI read the folder through it; the bundle's own entries (merge plan, pipeline description) stay
as written in `Manifest.extra`. The apps decode the same fields (docs/contract.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .manifest import FORMATS, MANIFEST, MANIFEST_KEY, VECTORS_DIR, ManifestError, inside, parse_manifest_text


@dataclass(frozen=True)
class FileRecord:
    """A file the manifest lists with its digest: `path` relative to the export folder."""

    path: str
    sha256: str
    bytes: int | None = None


@dataclass(frozen=True)
class TensorEntry:
    """One input or output of a part: its name, static shape and dtype (a torch dtype name)."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"


@dataclass(frozen=True)
class CaseMargin:
    """How clear eager's merge decisions were on one test-vector case (graphs/methods/margins.py)."""

    clear: bool
    smallest_gap: float | None = None
    min_margin: float | None = None
    site: str | None = None


@dataclass(frozen=True)
class Part:
    """A part of the model (one graph per format) with its test vectors' cases."""

    name: str
    inputs: tuple[TensorEntry, ...]
    outputs: tuple[TensorEntry, ...]
    cases: tuple[str, ...] = ()
    margins: Mapping[str, CaseMargin] = field(default_factory=dict)


@dataclass(frozen=True)
class Artifact:
    """One (format, part) file. Parts of a weight group name one shared file with their `method`
    (ExecuTorch) or `function` (Core ML, Core AI), or their own graph on a shared `weights` file."""

    format: str
    part: str
    file: FileRecord  # the graph, program, package or asset
    float_io: str = "float32"  # float16 for fp16 ExecuTorch and Core AI graphs
    precision: str = "fp32"
    method: str | None = None
    function: str | None = None
    weights: FileRecord | None = None  # ExecuTorch .ptd, a weight group's .onnx.data
    external_data: FileRecord | None = None  # a large single ONNX graph's data file
    weight_group: str | None = None
    companion_of: str | None = None  # the fp32 file an int8 companion stands in for
    partitions: int | None = None  # ExecuTorch: XNNPACK delegate partitions
    operators: tuple[str, ...] = ()  # ExecuTorch: the program's operators

    @property
    def path(self) -> str:
        return self.file.path

    @property
    def sha256(self) -> str:
        return self.file.sha256

    @property
    def entry_name(self) -> str | None:
        """Its method or function inside a file several parts share; None for a one-part file."""
        return self.method or self.function

    @property
    def label(self) -> str:
        """The file, with its method or function where several parts share the file."""
        return f"{self.path}:{self.entry_name}" if self.entry_name else self.path

    def files(self) -> tuple[FileRecord, ...]:
        """The file and the files beside it that it reads (weights, external data)."""
        return tuple(f for f in (self.file, self.weights, self.external_data) if f is not None)


@dataclass(frozen=True)
class WeightGroup:
    """Parts that hold the same weights, stored once per format (export/shared.py)."""

    name: str
    parts: tuple[str, ...]
    weights: Mapping[str, str]  # format -> the file that holds the group's weights


@dataclass(frozen=True)
class SplitFile:
    """A split part's files in one format: `total_bytes` (graph and weights) is what a budget counts."""

    file: FileRecord
    total_bytes: int
    weights: FileRecord | None = None
    method: str | None = None
    function: str | None = None

    @property
    def entry_name(self) -> str | None:
        return self.method or self.function


@dataclass(frozen=True)
class SplitPart:
    name: str
    inputs: tuple[TensorEntry, ...]
    outputs: tuple[TensorEntry, ...]
    files: Mapping[str, SplitFile]  # format -> its files


@dataclass(frozen=True)
class Split:
    """A denoiser split into ordered parts (`--split blocks`, docs/contract.md)."""

    kind: str
    sequences: Mapping[str, tuple[str, ...]]  # variant -> part names in run order
    parts: tuple[SplitPart, ...]  # every part once, in stream order


@dataclass(frozen=True)
class VideoConfig:
    """The video model's configuration (manifest `model_config`): what a sampler needs."""

    caption_len: int
    channels: int
    frames: int
    size: int
    tdtm_positions: str | None = None  # None: an export from before the TDTM modes were recorded
    tdtm_odd: str | None = None

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return 1, self.channels, self.frames, self.size, self.size  # (1, C, T, H, W)


@dataclass(frozen=True)
class SamplerDefaults:
    """The sampler defaults the export recorded (manifest `sampler`)."""

    steps: int
    guidance: float
    shift: float


@dataclass(frozen=True)
class Manifest:
    """A decoded manifest.json; `folder` is the export folder it describes."""

    folder: Path
    model: str
    parts: Mapping[str, Part]
    artifacts: tuple[Artifact, ...]
    files: Mapping[str, str]  # other files (tokenizer, contract) -> sha256
    test_vectors: Mapping[str, str]  # part -> sha256 of test_vectors/<part>.npz
    precision: str = "fp32"
    quantize: str | None = None
    weight_groups: Mapping[str, WeightGroup] = field(default_factory=dict)
    split: Split | None = None
    video: VideoConfig | None = None
    sampler: SamplerDefaults | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # every other entry, as written

    def path(self, rel: str) -> Path:
        """The folder's file `rel` (checked inside the folder when decoded)."""
        return self.folder / rel

    def artifact(self, fmt: str, part: str) -> Artifact | None:
        """The `fmt` artifact of `part` (an int8 companion never: it is not the reference), or None."""
        return next((a for a in self.artifacts if a.format == fmt and a.part == part and a.companion_of is None), None)

    def formats(self) -> set[str]:
        return {a.format for a in self.artifacts}

    def file_records(self) -> list[FileRecord]:
        """Every file record it holds, in order: artifacts and the files beside them, `files`, test
        vectors, the split parts' files of every format. A file several entries share is listed once
        per entry (a checksum pass hashes it once and checks every digest)."""
        records = [f for a in self.artifacts for f in a.files()]
        records += [FileRecord(rel, digest) for rel, digest in self.files.items()]
        records += [FileRecord(f"{VECTORS_DIR}/{stem}.npz", digest) for stem, digest in self.test_vectors.items()]
        for part in self.split.parts if self.split else ():
            records += [f for rec in part.files.values() for f in (rec.file, rec.weights) if f is not None]
        return records


def load_manifest(folder: Path) -> dict:
    """The manifest of `folder` as written (a JSON object), after `read_manifest` accepted it: for
    code that compares or copies its entries (an export reusing an earlier one). Readers take
    `read_manifest`."""
    data = _load_json(folder)
    decode_manifest(folder, data)
    return data


def read_manifest(folder: Path) -> Manifest:
    """The decoded manifest of `folder` (ManifestError, one line, saying what is wrong otherwise)."""
    return decode_manifest(folder, _load_json(folder))


def _load_json(folder: Path) -> Any:
    path = folder / MANIFEST
    if not path.is_file():
        raise ManifestError(f"{folder} has no {MANIFEST}: not a tomobile export folder")
    try:
        return parse_manifest_text(path.read_text())  # NaN, Infinity and too-deep nesting refused
    except (OSError, ValueError) as err:
        raise ManifestError(f"{path} is not valid JSON: {err}") from None


class _Bad(Exception):
    """What is wrong with the manifest, in words; `decode_manifest` names the file."""


def _need(ok: bool, what: str) -> None:
    if not ok:
        raise _Bad(what)


_NOUNS = {str: "string", int: "integer", float: "number", bool: "boolean", list: "list", dict: "object"}


class _Obj:
    """A JSON object at `where` in the manifest ('artifacts[2]'), read field by field."""

    def __init__(self, value: Any, where: str) -> None:
        _need(isinstance(value, dict), f"{where} is not an object")
        self.data, self.where = value, where

    def get(self, key: str, kind: type, required: bool = True) -> Any:
        """The value of `key` if it is a `kind` (float: any finite number); None when absent or
        null and not `required`."""
        value = self.data.get(key)
        if value is None:
            _need(not required, f"{self.where} has no {key!r} {_NOUNS[kind]}")
            return None
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = (number and math.isfinite(value)) if kind is float else (
            isinstance(value, kind) and not (kind is int and isinstance(value, bool)))
        _need(ok, f"{self.where}.{key} is not a{'n' if _NOUNS[kind][0] in 'aeiou' else ''} {_NOUNS[kind]}")
        return value

    def obj(self, key: str, required: bool = True) -> _Obj | None:
        value = self.get(key, dict, required)
        return None if value is None else _Obj(value, f"{self.where}.{key}")


def _tensors(part: _Obj, side: str) -> tuple[TensorEntry, ...]:
    specs = part.get(side, list)
    _need(bool(specs), f"{part.where} has no {side!r} list")
    out = []
    for i, raw in enumerate(specs):
        spec = _Obj(raw, f"{part.where}.{side}[{i}]")
        shape = spec.get("shape", list)
        _need(all(isinstance(d, int) and not isinstance(d, bool) for d in shape),
              f"{part.where}.{side} entries need a 'name' and an integer 'shape'")
        out.append(TensorEntry(spec.get("name", str), tuple(shape), spec.get("dtype", str, False) or "float32"))
    return tuple(out)


def _part(name: str, raw: Any) -> Part:
    part = _Obj(raw, f"parts[{name!r}]")
    margins = {}
    for case, found in (part.get("margins", dict, False) or {}).items():
        m = _Obj(found, f"{part.where}.margins[{case!r}]")
        margins[case] = CaseMargin(m.get("clear", bool, False) is not False, m.get("smallest_gap", float, False),
                                   m.get("min_margin", float, False), m.get("site", str, False))
    cases = part.get("cases", list, False) or []
    _need(all(isinstance(c, str) for c in cases), f"{part.where}.cases must be a list of strings")
    return Part(name, _tensors(part, "inputs"), _tensors(part, "outputs"), tuple(cases), margins)


def _record(folder: Path, entry: _Obj | None) -> FileRecord | None:
    """A {path, sha256, bytes} entry, its path inside the folder."""
    if entry is None:
        return None
    inside(folder, entry.get("path", str))
    return FileRecord(entry.get("path", str), entry.get("sha256", str), entry.get("bytes", int, False))


def _artifact(folder: Path, i: int, raw: Any, parts: Mapping[str, Part]) -> Artifact:
    a = _Obj(raw, f"artifacts[{i}]")
    fmt, part = a.get("format", str), a.get("part", str)
    _need(fmt in FORMATS, f"{a.where} has format {fmt!r}; formats: {', '.join(FORMATS)}")
    _need(part in parts, f"{a.where} names part {part!r}, which 'parts' lacks")
    a.get("path", str), a.get("sha256", str)
    operators = a.get("operators", list, False) or []
    _need(all(isinstance(o, str) for o in operators), f"{a.where}.operators must be a list of strings")
    return Artifact(fmt, part, _record(folder, a), a.get("float_io", str, False) or "float32",
                    a.get("precision", str, False) or "fp32", a.get("method", str, False), a.get("function", str, False),
                    _record(folder, a.obj("weights", False)), _record(folder, a.obj("external_data", False)),
                    a.get("weight_group", str, False), a.get("companion_of", str, False),
                    a.get("partitions", int, False), tuple(operators))


def _weight_groups(folder: Path, m: _Obj, parts: Mapping[str, Part]) -> dict[str, WeightGroup]:
    groups = {}
    for name, raw in (m.get("weight_groups", dict, False) or {}).items():
        g = _Obj(raw, f"weight_groups[{name!r}]")
        members, weights = g.get("parts", list), g.get("weights", dict)
        for p in members:
            _need(p in parts, f"{g.where} names part {p!r}, which 'parts' lacks")
        for fmt, rel in weights.items():
            _need(fmt in FORMATS, f"{g.where}.weights has format {fmt!r}; formats: {', '.join(FORMATS)}")
            inside(folder, rel)
        groups[name] = WeightGroup(name, tuple(members), dict(weights))
    return groups


def _split_part(folder: Path, i: int, raw: Any) -> SplitPart:
    p = _Obj(raw, f"split.parts[{i}]")
    raw_files = p.get("files", dict)
    _need(bool(raw_files), f"{p.where}.files is empty")
    files = {}
    for fmt, rec in raw_files.items():
        _need(fmt in FORMATS, f"{p.where}.files has format {fmt!r}; formats: {', '.join(FORMATS)}")
        f = _Obj(rec, f"{p.where}.files.{fmt}")
        total = f.get("total_bytes", int)
        _need(total >= 0, f"{f.where}.total_bytes is {total!r}, not a non-negative integer")
        files[fmt] = SplitFile(_record(folder, f), total, _record(folder, f.obj("weights", False)),
                               f.get("method", str, False), f.get("function", str, False))
    return SplitPart(p.get("name", str), _tensors(p, "inputs"), _tensors(p, "outputs"), files)


def _split(folder: Path, m: _Obj, parts: Mapping[str, Part]) -> Split | None:
    """The split entry as tomobile-native decodes it (runtime/native/src/manifest.cpp): parts with
    their files, records and sizes; sequences that are not empty and name parts that exist."""
    s = m.obj("split", False)
    if s is None:
        return None
    raw_parts = s.get("parts", list)
    _need(bool(raw_parts), "split.parts is empty")
    split_parts = tuple(_split_part(folder, i, raw) for i, raw in enumerate(raw_parts))
    names = {p.name for p in split_parts}
    raw_sequences = s.get("sequences", dict)
    _need(bool(raw_sequences), "split.sequences is empty")
    sequences = {}
    for variant, seq in raw_sequences.items():
        _need(variant in parts, f"split.sequences names variant {variant!r}, which 'parts' lacks")
        _need(isinstance(seq, list) and bool(seq) and all(n in names for n in seq),
              f"split.sequences[{variant!r}] must list parts that split.parts holds")
        sequences[variant] = tuple(seq)
    return Split(s.get("kind", str, False) or "blocks", sequences, split_parts)


def _video(m: _Obj) -> tuple[VideoConfig | None, SamplerDefaults | None]:
    c, s = m.obj("model_config", False), m.obj("sampler", False)
    video = None if c is None else VideoConfig(*(c.get(k, int) for k in ("caption_len", "channels", "frames", "size")),
                                               c.get("tdtm_positions", str, False), c.get("tdtm_odd", str, False))
    sampler = None if s is None or "steps" not in s.data else SamplerDefaults(
        s.get("steps", int), s.get("guidance", float), s.get("shift", float))
    return video, sampler


_DECODED = {MANIFEST_KEY, "model", "parts", "artifacts", "files", "test_vectors", "precision", "quantize",
            "weight_groups", "split", "model_config", "sampler"}


def decode_manifest(folder: Path, data: Any) -> Manifest:
    """`data` (a manifest as loaded from JSON) decoded, for the export folder `folder`."""
    try:
        _need(isinstance(data, dict), f"it holds a JSON {type(data).__name__}, not an object")
        m = _Obj(data, "the manifest")
        _need(MANIFEST_KEY in data, f"no {MANIFEST_KEY!r} key")
        raw_parts = m.get("parts", dict, False)
        _need(bool(raw_parts), "'parts' is missing or empty")
        parts = {name: _part(name, raw) for name, raw in raw_parts.items()}
        raw_artifacts = m.get("artifacts", list, False)
        _need(bool(raw_artifacts), "'artifacts' is missing or empty")
        artifacts = tuple(_artifact(folder, i, a, parts) for i, a in enumerate(raw_artifacts))
        tables = {}
        for key in ("test_vectors", "files"):
            table = data.get(key, {})
            _need(isinstance(table, dict) and all(isinstance(v, str) for v in table.values()),
                  f"{key!r} must map names to sha256 strings")
            tables[key] = dict(table)
        _need(set(parts) <= set(tables["test_vectors"]), "a part has no 'test_vectors' entry")
        for name in tables["files"]:
            inside(folder, name)
        groups = _weight_groups(folder, m, parts)
        _check_references(artifacts, groups)
        video, sampler = _video(m)
        return Manifest(folder, m.get("model", str, False) or "", parts, artifacts, tables["files"],
                        tables["test_vectors"], m.get("precision", str, False) or "fp32",
                        m.get("quantize", str, False), groups, _split(folder, m, parts), video, sampler,
                        {k: v for k, v in data.items() if k not in _DECODED})
    except _Bad as bad:
        raise ManifestError(f"{folder / MANIFEST} is not a tomobile manifest: {bad}") from None


def _check_references(artifacts: tuple[Artifact, ...], groups: Mapping[str, WeightGroup]) -> None:
    """An artifact's weight group is listed; an int8 companion stands in for an fp32 file of its part."""
    for i, a in enumerate(artifacts):
        _need(a.weight_group is None or a.weight_group in groups,
              f"artifacts[{i}] names weight group {a.weight_group!r}, which 'weight_groups' lacks")
        _need(a.companion_of is None or any(b.path == a.companion_of and b.part == a.part and b.format == a.format
                                            for b in artifacts),
              f"artifacts[{i}] is a companion of {a.companion_of!r}, which no {a.format} artifact of {a.part} is")
