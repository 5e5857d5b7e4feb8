"""Validate an exported folder: checksums, then every artifact against eager PyTorch's outputs.

The eager fp32 outputs of the same patched model were written by the export as test vectors
(seeded inputs, plus real inputs for real-weight models); validation compares with those stored
outputs and does not run eager PyTorch again. ONNX Runtime CPU, the ExecuTorch runtime and Core
AI's Linux CPU runtime (coreai-core) run each artifact on those inputs; Core ML is spec-checked on
Linux and its numerics are reported as 'needs macOS', never as passed.
"""

from __future__ import annotations

import logging
import math
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..graphs.errors import TomobileError
from ..graphs.methods.margins import MIN_MARGIN
from .artifacts import artifact_runner
from .manifest import entry_name, file_records, inside, load_manifest, sha256_path
from .streaming import RUNTIME_FORMATS, UNLIMITED, BlockStreamer, open_split
from .tables import aligned_table

log = logging.getLogger(__name__)

FP32_MAX_ABS_ERROR = 1e-4  # fp32 artifacts: max abs error against eager fp32
FP16_MIN_PSNR_DB = 35.0  # fp16 artifacts: PSNR against eager fp32 (Apple's ABSOLUTE_MIN_PSNR)
INT8_MIN_PSNR_DB = 30.0  # int8 (dynamic quantisation) artifacts: PSNR against eager fp32
PASS, FAIL, NEEDS_MACOS = "pass", "FAIL", "needs macOS"


class ValidationError(TomobileError, RuntimeError):
    """The folder cannot be validated at all: missing manifest, checksum mismatch, unreadable file."""


@dataclass(frozen=True)
class OutputCheck:
    artifact: str
    case: str
    output: str
    shape: tuple[int, ...]
    max_abs_error: float | None
    psnr_db: float | None
    status: str
    note: str = ""


@dataclass
class ValidationReport:
    folder: str
    checks: list[OutputCheck] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.status != FAIL for c in self.checks)

    def to_json(self) -> dict:
        rows = [{**asdict(c), "shape": list(c.shape)} for c in self.checks]
        for row in rows:
            if row["psnr_db"] is not None and math.isinf(row["psnr_db"]):
                row["psnr_db"] = "inf"
        return {"passed": self.passed, "thresholds": {"fp32_max_abs_error": FP32_MAX_ABS_ERROR,
                                                      "fp16_min_psnr_db": FP16_MIN_PSNR_DB,
                                                      "int8_min_psnr_db": INT8_MIN_PSNR_DB,
                                                      "merge_min_margin": MIN_MARGIN}, "checks": rows}


def psnr(reference: np.ndarray, actual: np.ndarray, peak: float | None = None) -> float:
    """20 log10(peak / rmse), peak = max |reference| unless given; inf when identical."""
    ref = reference.astype(np.float64)
    mse = float(np.mean((ref - actual.astype(np.float64)) ** 2))
    if mse == 0.0:
        return math.inf
    peak = peak or float(np.max(np.abs(ref))) or 1.0
    return 20.0 * math.log10(peak / math.sqrt(mse))


def compare(reference: np.ndarray, actual: np.ndarray, precision: str) -> tuple[float, float, str, str]:
    """(max abs error, PSNR, status, note) under the threshold for `precision`."""
    if reference.shape != actual.shape:
        return math.nan, math.nan, FAIL, f"shape {actual.shape} != eager {reference.shape}"
    err = float(np.max(np.abs(reference.astype(np.float64) - actual.astype(np.float64)))) if reference.size else 0.0
    quality = psnr(reference, actual)
    if not np.all(np.isfinite(actual)):
        return err, quality, FAIL, "non-finite values"
    if precision in ("fp16", "int8"):
        floor = FP16_MIN_PSNR_DB if precision == "fp16" else INT8_MIN_PSNR_DB
        ok = quality >= floor
        return err, quality, PASS if ok else FAIL, f"PSNR >= {floor:g} dB"
    ok = err <= FP32_MAX_ABS_ERROR
    return err, quality, PASS if ok else FAIL, f"max abs <= {FP32_MAX_ABS_ERROR:g}"


def verify_checksums(folder: Path, manifest: dict) -> None:
    """Every file record the manifest holds (file_records: split parts' files included) present and
    equal to its sha256; a file listed twice is hashed once and each record checked."""
    computed: dict[str, str] = {}
    for rel, digest in file_records(manifest):
        path = inside(folder, rel)
        if rel not in computed:
            if not path.exists():
                raise ValidationError(f"{path} is listed in the manifest but missing")
            computed[rel] = sha256_path(path)
        if computed[rel] != digest:
            raise ValidationError(f"{path} does not match its sha256 in the manifest (corrupt or changed)")


def vector_cases(folder: Path, part: str) -> dict[str, tuple[list[np.ndarray], dict[str, np.ndarray]]]:
    data = np.load(folder / "test_vectors" / f"{part}.npz")
    cases: dict[str, tuple[list, dict]] = {}
    for key in data.files:
        case, kind, name = key.split(".", 2)
        inputs, outputs = cases.setdefault(case, ([], {}))
        (inputs.append(data[key]) if kind == "input" else outputs.__setitem__(name, data[key]))
    return cases


def margin_note(part: dict, case: str) -> str:
    """What the export recorded about how clear eager's merge decisions are on `case` (its
    "margins" entry, graphs/methods/margins.py): empty when they all clear the margin or none were taken."""
    found = part.get("margins", {}).get(case)
    if not found or found.get("clear", True):
        return ""
    return (f"; eager's closest merge decision is {found['smallest_gap']:.1e} from flipping "
            f"(< {found['min_margin']:g}, at {found['site']}): a backend may take the other one")


def _run_artifact(folder: Path, artifact: dict, manifest: dict) -> list[OutputCheck]:
    part = manifest["parts"][artifact["part"]]
    names = [o["name"] for o in part["outputs"]]
    runner = artifact_runner(folder, artifact)
    precision = artifact.get("precision", "fp32")
    checks = []
    for case, (inputs, expected) in vector_cases(folder, artifact["part"]).items():
        if artifact.get("float_io") == "float16":
            inputs = [x.astype(np.float16) if x.dtype == np.float32 else x for x in inputs]
        outputs = runner.run(inputs)
        for name, actual in zip(names, outputs, strict=True):
            err, quality, status, note = compare(expected[name], np.asarray(actual), precision)
            note += margin_note(part, case)
            checks.append(OutputCheck(artifact_label(artifact), case, name, tuple(np.shape(actual)), err, quality, status, note))
    if hasattr(runner, "close"):  # Core AI: release the loaded model now, not when collected
        runner.close()
    return checks


def artifact_label(artifact: dict) -> str:
    """The artifact's file, with its method or function where several parts share the file."""
    inner = entry_name(artifact)
    return f"{artifact['path']}:{inner}" if inner else artifact["path"]


def _check_coreml(folder: Path, artifact: dict, manifest: dict) -> list[OutputCheck]:
    """Spec check on any OS: inputs and outputs with the manifest's names and static shapes."""
    import coremltools as ct

    spec = ct.utils.load_spec(str(inside(folder, artifact["path"])))
    part = manifest["parts"][artifact["part"]]
    function = artifact.get("function")  # a function of a multifunction package (shared weights)
    described = {f.name: f for f in spec.description.functions}
    if function is not None and function not in described:
        return [OutputCheck(artifact_label(artifact), "spec", "-", (), None, None, FAIL,
                            f"the package has no function {function!r} (functions: {', '.join(described) or 'none'})")]
    desc = described[function] if function is not None else spec.description
    got_in = {i.name: tuple(i.type.multiArrayType.shape) for i in desc.input}
    want_in = {i["name"]: tuple(i["shape"]) for i in part["inputs"]}
    got_out = [o.name for o in desc.output]
    problems = []
    if got_in != want_in:
        problems.append(f"inputs {got_in} != manifest {want_in}")
    if got_out != [o["name"] for o in part["outputs"]]:
        problems.append(f"outputs {got_out} != manifest")
    ops = sorted({op.type for name, f in spec.mlProgram.functions.items() if function in (None, name)
                  for b in f.block_specializations.values() for op in b.operations})
    status = FAIL if problems else NEEDS_MACOS
    note = "; ".join(problems) or f"spec ok: static shapes, {len(ops)} op types; numerics need macOS"
    return [OutputCheck(artifact_label(artifact), "spec", o["name"], tuple(o["shape"]), None, None, status, note)
            for o in part["outputs"]]


def check_chains(folder: Path, manifest: dict) -> list[OutputCheck]:
    """Each variant's parts chained in order (all resident) on the monolithic model's test vectors
    (a video denoiser, a Wan transformer), against its eager output; one row per runtime, variant and case."""
    formats = {f for p in manifest["split"]["parts"] for f in p["files"]}
    checks = []
    for runtime, fmt in RUNTIME_FORMATS.items():
        if fmt not in formats:
            continue
        try:
            split = open_split(folder, runtime, verify=False)  # validate_dir checked the sha256s
            streamer = BlockStreamer(split, UNLIMITED, prefetch=False)
        except Exception as err:
            return [*checks, OutputCheck(f"chain ({fmt})", "load", "-", (), None, None, FAIL, str(err))]
        precision = "fp16" if any(p.float16 for p in split.parts.values()) else "fp32"
        for variant in split.sequences:
            names = [i["name"] for i in manifest["parts"][variant]["inputs"]]
            output = manifest["parts"][variant]["outputs"][0]["name"]  # the chain returns the last part's first
            for case, (inputs, expected) in vector_cases(folder, variant).items():
                try:
                    out = streamer(variant, dict(zip(names, inputs, strict=True)))
                except Exception as err:  # a part that cannot load or run: a FAIL row, as for a single model
                    first = str(err).splitlines()[0] if str(err) else ""
                    checks.append(OutputCheck(f"chain {variant} ({fmt})", case, output, (), None, None, FAIL,
                                              f"{type(err).__name__}: {first}"))
                    continue
                err, quality, status, note = compare(expected[output], out, precision)
                note += margin_note(manifest["parts"][variant], case)
                checks.append(OutputCheck(f"chain {variant} ({fmt})", case, output, out.shape, err, quality,
                                          status, note))
        streamer.close()
    return checks


def validate_dir(folder: Path, progress: bool = True) -> ValidationReport:
    """Checksums, then every artifact in the folder against the eager test vectors."""
    manifest = load_manifest(folder)
    verify_checksums(folder, manifest)
    report = ValidationReport(str(folder))
    artifacts = manifest.get("artifacts", [])
    for artifact in tqdm(artifacts, desc="validate", unit="artifact", disable=not progress):
        if artifact["format"] == "coreml":
            if platform.system() == "Darwin":
                log.warning("Core ML prediction on macOS is not wired in yet; spec check only")
            report.checks.extend(_check_coreml(folder, artifact, manifest))
            continue
        try:
            report.checks.extend(_run_artifact(folder, artifact, manifest))
        except Exception as err:  # a runtime that cannot load or run the artifact is a failure to report
            report.checks.append(OutputCheck(artifact_label(artifact), "load", "-", (), None, None, FAIL,
                                             f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"))
    if "split" in manifest:  # the parts chained in order against the monolithic denoisers' eager outputs

        report.checks.extend(check_chains(folder, manifest))
    return report


def format_table(report: ValidationReport) -> str:
    header = ("artifact", "case", "output", "shape", "max abs err", "PSNR dB", "result")
    rows = [header]
    for c in report.checks:
        err = "-" if c.max_abs_error is None else f"{c.max_abs_error:.2e}"
        db = "-" if c.psnr_db is None else ("inf" if math.isinf(c.psnr_db) else f"{c.psnr_db:.1f}")
        rows.append((c.artifact, c.case, c.output, "x".join(map(str, c.shape)) or "-", err, db,
                     f"FAIL ({c.note})" if c.status == FAIL else
                     f"{c.status} ({c.note})" if c.note.startswith("near-tie") else c.status))  # export/near_ties.py
    lines = [aligned_table(rows)]
    verdict = "PASSED" if report.passed else "FAILED"
    lines.append(f"validation {verdict}: {sum(c.status == PASS for c in report.checks)} pass, "
                 f"{sum(c.status == FAIL for c in report.checks)} fail, "
                 f"{sum(c.status == NEEDS_MACOS for c in report.checks)} need macOS")
    return "\n".join(lines)
