"""Validate an exported folder: checksums, then every artifact against eager PyTorch's outputs.

The eager fp32 outputs of the same patched model were written by the export as test vectors
(seeded inputs, plus real inputs for real-weight models); validation compares with those stored
outputs and does not run eager PyTorch again. ONNX Runtime CPU, the ExecuTorch runtime and Core
AI's Linux CPU runtime (coreai-core) run each artifact on those inputs; Core ML is spec-checked on
Linux and its numerics are reported as 'needs macOS', never as passed. Rows and thresholds are
report.py's.

`validate_export` is everything `tomobile validate` checks: `validate_dir`'s rows, then the rows
of each check in FOLDER_CHECKS (checks an export needs beyond its artifacts' test vectors; each
returns no rows for a folder it does not concern).
"""

from __future__ import annotations

import logging
import platform
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .manifest import FORMATS, VECTORS_DIR, sha256_path
from .manifest_reader import Artifact, Manifest, Part, read_manifest
from .report import FAIL, NEEDS_MACOS, OutputCheck, ValidationError, ValidationReport, compare
from .runners import artifact_runner
from .streaming import BlockStreamer, open_split
from .text_int8 import check_text_companion

log = logging.getLogger(__name__)

CHAIN_BUDGET = 1 << 30  # bytes of parts the chain check may hold loaded (at least twice the largest part)

FolderCheck = Callable[[Path, Manifest], list[OutputCheck]]
# Checks beyond each artifact's test vectors, in the order their rows are reported.
FOLDER_CHECKS: tuple[FolderCheck, ...] = (
    check_text_companion,  # an int8 text encoder companion against the fp32 pipeline (text_int8.py)
)


def verify_checksums(manifest: Manifest) -> None:
    """Every file record the manifest holds (Manifest.file_records: split parts' files included)
    present and equal to its sha256 (ValidationError otherwise); a file listed twice is hashed once
    and each record checked."""
    computed: dict[str, str] = {}
    for record in manifest.file_records():
        path = manifest.path(record.path)
        if record.path not in computed:
            if not path.exists():
                raise ValidationError(f"{path} is listed in the manifest but missing")
            computed[record.path] = sha256_path(path)
        if computed[record.path] != record.sha256:
            raise ValidationError(f"{path} does not match its sha256 in the manifest (corrupt or changed)")


def vector_cases(folder: Path, part: str) -> dict[str, tuple[list[np.ndarray], dict[str, np.ndarray]]]:
    data = np.load(folder / VECTORS_DIR / f"{part}.npz")
    cases: dict[str, tuple[list, dict]] = {}
    for key in data.files:
        case, kind, name = key.split(".", 2)
        inputs, outputs = cases.setdefault(case, ([], {}))
        (inputs.append(data[key]) if kind == "input" else outputs.__setitem__(name, data[key]))
    return cases


def margin_note(part: Part, case: str) -> str:
    """What the export recorded about how clear eager's merge decisions are on `case` (its
    "margins" entry, graphs/methods/margins.py): empty when they all clear the margin or none were taken."""
    found = part.margins.get(case)
    if found is None or found.clear:
        return ""
    return (f"; eager's closest merge decision is {found.smallest_gap:.1e} from flipping "
            f"(< {found.min_margin:g}, at {found.site}): a backend may take the other one")


def _run_artifact(manifest: Manifest, artifact: Artifact) -> list[OutputCheck]:
    part = manifest.parts[artifact.part]
    names = [o.name for o in part.outputs]
    checks = []
    with artifact_runner(manifest.folder, artifact) as runner:
        for case, (inputs, expected) in vector_cases(manifest.folder, artifact.part).items():
            if artifact.float_io == "float16":
                inputs = [x.astype(np.float16) if x.dtype == np.float32 else x for x in inputs]
            outputs = runner.run(inputs)
            for name, actual in zip(names, outputs, strict=True):
                err, quality, status, note = compare(expected[name], np.asarray(actual), artifact.precision)
                note += margin_note(part, case)
                checks.append(OutputCheck(artifact.label, case, name, tuple(np.shape(actual)), err, quality, status,
                                          note))
    return checks


def _check_coreml(manifest: Manifest, artifact: Artifact) -> list[OutputCheck]:
    """Spec check on any OS: inputs and outputs with the manifest's names and static shapes."""
    import coremltools as ct  # deferred: a heavy converter, needed only for Core ML rows

    spec = ct.utils.load_spec(str(manifest.path(artifact.path)))
    part = manifest.parts[artifact.part]
    function = artifact.function  # a function of a multifunction package (shared weights)
    described = {f.name: f for f in spec.description.functions}
    if function is not None and function not in described:
        return [OutputCheck(artifact.label, "spec", "-", (), None, None, FAIL,
                            f"the package has no function {function!r} (functions: {', '.join(described) or 'none'})")]
    desc = described[function] if function is not None else spec.description
    got_in = {i.name: tuple(i.type.multiArrayType.shape) for i in desc.input}
    want_in = {i.name: i.shape for i in part.inputs}
    got_out = [o.name for o in desc.output]
    problems = []
    if got_in != want_in:
        problems.append(f"inputs {got_in} != manifest {want_in}")
    if got_out != [o.name for o in part.outputs]:
        problems.append(f"outputs {got_out} != manifest")
    ops = sorted({op.type for name, f in spec.mlProgram.functions.items() if function in (None, name)
                  for b in f.block_specializations.values() for op in b.operations})
    status = FAIL if problems else NEEDS_MACOS
    note = "; ".join(problems) or f"spec ok: static shapes, {len(ops)} op types; numerics need macOS"
    return [OutputCheck(artifact.label, "spec", o.name, o.shape, None, None, status, note) for o in part.outputs]


def chain_budget(largest: int) -> int:
    """What the chain check may hold loaded: every part of a small model, a few of a big one's (a
    1.3B transformer's 30 blocks are not all loaded at once: streaming computes the same chain)."""
    return max(CHAIN_BUDGET, 2 * largest)


def check_chains(manifest: Manifest) -> list[OutputCheck]:
    """Each variant's parts chained in order (streamed under chain_budget) on the monolithic model's test vectors
    (a video denoiser, a Wan transformer), against its eager output; one row per runtime, variant and case."""
    assert manifest.split is not None
    formats = {f for p in manifest.split.parts for f in p.files}
    checks = []
    for fmt in (f for f in FORMATS.values() if f.runtime and f.name in formats):
        try:
            split = open_split(manifest.folder, fmt.runtime, verify=False)  # validate_dir checked the sha256s
            streamer = BlockStreamer(split, chain_budget(split.largest().size), prefetch=False)
        except Exception as err:
            return [*checks, OutputCheck(f"chain ({fmt.name})", "load", "-", (), None, None, FAIL, str(err))]
        precision = "fp16" if any(p.float16 for p in split.parts.values()) else "fp32"
        for variant in split.sequences:
            checks += _chain_rows(manifest, streamer, variant, fmt.name, precision)
        streamer.close()
    return checks


def _chain_rows(manifest: Manifest, streamer: BlockStreamer, variant: str, fmt: str,
                precision: str) -> list[OutputCheck]:
    part, label, rows = manifest.parts[variant], f"chain {variant} ({fmt})", []
    names = [i.name for i in part.inputs]
    output = part.outputs[0].name  # the chain returns the last part's first output
    for case, (inputs, expected) in vector_cases(manifest.folder, variant).items():
        try:
            out = streamer(variant, dict(zip(names, inputs, strict=True)))
        except Exception as err:  # a part that cannot load or run: a FAIL row, as for a single model
            first = str(err).splitlines()[0] if str(err) else ""
            rows.append(OutputCheck(label, case, output, (), None, None, FAIL, f"{type(err).__name__}: {first}"))
            continue
        err, quality, status, note = compare(expected[output], out, precision)
        rows.append(OutputCheck(label, case, output, out.shape, err, quality, status,
                                note + margin_note(part, case)))
    return rows


def validate_dir(folder: Path, progress: bool = True) -> ValidationReport:
    """Checksums, then every artifact in the folder against the eager test vectors."""
    manifest = read_manifest(folder)
    verify_checksums(manifest)
    report = ValidationReport(str(folder))
    for artifact in tqdm(manifest.artifacts, desc="validate", unit="artifact", disable=not progress):
        if FORMATS[artifact.format].runtime is None:  # Core ML: predictions need macOS
            if platform.system() == "Darwin":
                log.warning("Core ML prediction on macOS is not wired in yet; spec check only")
            report.checks.extend(_check_coreml(manifest, artifact))
            continue
        try:
            report.checks.extend(_run_artifact(manifest, artifact))
        except Exception as err:  # a runtime that cannot load or run the artifact is a failure to report
            report.checks.append(OutputCheck(artifact.label, "load", "-", (), None, None, FAIL,
                                             f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"))
    if manifest.split is not None:  # the parts chained in order against the monolithic denoisers' eager outputs
        report.checks.extend(check_chains(manifest))
    return report


def validate_export(folder: Path, progress: bool = True) -> ValidationReport:
    """Everything `tomobile validate` checks in an export folder: validate_dir's rows (checksums,
    every artifact against its test vectors, split chains), then each FOLDER_CHECKS check's."""
    report = validate_dir(folder, progress=progress)
    manifest = read_manifest(folder)
    for check in FOLDER_CHECKS:
        report.checks.extend(check(folder, manifest))
    return report
