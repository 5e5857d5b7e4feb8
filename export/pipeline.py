"""Export a ModelBundle: stage -> validate -> finalize, written once (`export_model`).

Nothing is written to the output folder until every artifact exported (and, when asked, passed
validation): the work happens in a hidden sibling folder that `output.finalize` renames into
place, so a failure leaves no half-written DIR (see export/output.py for what DIR may be). The
folder's schema (manifest, file names, sha256) is runtime/manifest.py.
"""

from __future__ import annotations

import copy
import functools
import gc
import json
import logging
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..graphs.errors import TomobileError
from ..graphs.methods.margins import case_margin, draw_clear_inputs, measure
from ..graphs.methods.merge import ARITHMETIC
from ..graphs.methods.ops import MergeOps
from ..graphs.models.exportable import Exportable, ModelBundle
from ..runtime.contract import write_contract
from ..runtime.manifest import (
    VECTORS_DIR,
    ManifestError,
    is_export_folder,
    new_manifest,
    sha256_path,
    size_bytes,
    write_manifest,
)
from ..runtime.manifest_reader import Artifact, decode_manifest, load_manifest
from ..runtime.memory import malloc_trim
from ..runtime.report import ValidationReport
from ..runtime.validate import validate_export
from ..runtime.wan_artifacts import KIND as WAN_KIND
from ..runtime.wan_contract import write_wan_contract
from .executorch_int8 import CALIBRATION_SEEDS
from .near_ties import explain_near_ties
from .output import Staging, finalize, make_staging
from .registry import Exporter, ExportOptions, PartInfo, get_exporter
from .shared import weight_group_table, weight_groups
from .split import eager_chain_checks, list_parts

log = logging.getLogger(__name__)

_TOOLS = ("tomobile", "torch", "transformers", "executorch", "coremltools", "coreai-torch", "coreai-core", "onnx", "onnxruntime", "onnxscript")


@dataclass
class Exported:
    """What `export_model` left at `folder`."""

    folder: Path
    manifest: dict
    report: ValidationReport | None = None  # None: not validated, or an earlier export reused
    reused: bool = False

    @property
    def passed(self) -> bool:
        return self.report is None or self.report.passed

    def artifacts(self) -> tuple[Artifact, ...]:
        """The manifest's artifacts, decoded."""
        return decode_manifest(self.folder, self.manifest).artifacts


class ValidationFailed(TomobileError):
    """An export that failed validation where a pass was required; nothing was written. `report`
    holds the table's rows."""

    def __init__(self, folder: Path, report: ValidationReport) -> None:
        super().__init__(f"the export for {folder} failed validation; nothing was written")
        self.report = report


def export_model(bundle: ModelBundle, formats: list[str], out: Path, options: ExportOptions, *,
                 validate: bool = True, require_pass: bool = False, reuse: bool = False,
                 progress: bool = True) -> Exported:
    """Export every part of `bundle` to every format into `out` (an absolute path that
    output.check_out_dir accepted), validate it against eager PyTorch, and move it into place.

    `reuse`: keep an earlier export at `out` of the same bundle, formats and options instead.
    `require_pass`: a validation failure raises ValidationFailed and leaves `out` as it was;
    otherwise the folder is written with the failing report in its manifest (`Exported.passed`).
    On any error, Ctrl-C or SIGTERM included, the staging folder is removed."""
    if reuse and (earlier := reusable_export(out, bundle, formats, options)) is not None:
        log.info("reusing %s", out)
        return Exported(out, earlier, reused=True)
    staging, manifest = stage_export(bundle, formats, out, options, progress=progress)
    report = None
    with staging:
        if validate:
            report = explain_near_ties(bundle, staging.path, validate_export(staging.path, progress=progress))
            report.checks.extend(eager_chain_checks(bundle, staging.path))
            manifest["validation"] = report.to_json()
            write_manifest(staging.path, manifest)
            report = _relocated(report, staging.path, out)
            if require_pass and not report.passed:
                raise ValidationFailed(out, report)
        finalize(staging)
    return Exported(out, manifest, report)


def _relocated(report: ValidationReport, staged: Path, out: Path) -> ValidationReport:
    """The report with the staging folder's path replaced by the final one (in its notes)."""
    checks = [replace(c, note=c.note.replace(str(staged), str(out))) for c in report.checks]
    return ValidationReport(str(out), checks)


def reusable_export(folder: Path, bundle: ModelBundle, formats: list[str], options: ExportOptions) -> dict | None:
    """The manifest of an earlier export at `folder` of the same model, bundle entries (merge spec,
    TDTM modes, split sequences), precision and quantization, holding every format in `formats`
    with its files present; None when there is none."""
    if not is_export_folder(folder):
        return None
    try:
        manifest = load_manifest(folder)  # as written: the bundle's entries compare as they are
    except ManifestError:
        return None
    decoded = decode_manifest(folder, manifest)
    wanted = json.loads(json.dumps(bundle.manifest))  # as it reads back from JSON
    same = (decoded.model == bundle.name
            and all(manifest.get(k) == v for k, v in wanted.items() if k != "split")
            and manifest.get("split", {}).get("sequences") == wanted.get("split", {}).get("sequences")
            and manifest.get("precision") == options.precision and manifest.get("quantize") == options.quantize)
    present = all(decoded.path(a.path).exists() for a in decoded.artifacts)
    return manifest if same and set(formats) <= decoded.formats() and present else None


def tool_versions() -> dict[str, str]:
    versions = {}
    for name in _TOOLS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _io_spec(wrapper: Exportable, outputs: tuple[torch.Tensor, ...]) -> dict:
    return {
        "inputs": [{"name": s.name, "shape": list(s.shape), "dtype": s.dtype} for s in wrapper.input_specs],
        "outputs": [{"name": n, "shape": list(o.shape), "dtype": str(o.dtype).removeprefix("torch.")}
                    for n, o in zip(wrapper.output_names, outputs, strict=True)],
    }


def _programs(wrapper: Exportable, inputs: tuple[torch.Tensor, ...]):
    """torch.export programs per precision (fp16 casts weights and float inputs) and merge spelling
    (graphs/methods/ops.py: the same assignment, ops chosen per runtime by the exporter) and, where a model
    spells its merge per format too (a UNet's tomesd blocks: Exportable.spelling), per format; traced once,
    inside the model's `spelled(ops.for_export(), fmt)`: the patched modules hold that spelling for the trace.

    Every call returns a deep copy: lowering changes a program in place (ExecuTorch's
    constant_prop_pass lifts new constants into it), and what one exporter did must not reach the
    next one, whatever the order of the formats."""
    cache: dict[tuple, torch.export.ExportedProgram] = {}

    def get(precision: str, ops: MergeOps = ARITHMETIC, fmt: str | None = None) -> torch.export.ExportedProgram:
        key = (precision, ops, wrapper.spelling(ops, fmt))  # formats whose graphs are spelled alike share a trace
        if key not in cache:
            module, args = wrapper, inputs
            if precision == "fp16":
                module = copy.deepcopy(wrapper).half()
                args = tuple(a.half() if a.is_floating_point() else a for a in inputs)
            with torch.no_grad(), module.spelled(ops.for_export(), fmt):
                cache[key] = torch.export.export(module, args, strict=False)
        return copy.deepcopy(cache[key])

    return get


def _write_vectors(bundle: ModelBundle, stem: str, wrapper: Exportable, folder: Path) -> dict:
    """Seeded (and real, where the model has them) inputs with eager fp32 outputs: the reference
    every artifact is checked against, here and in the apps. The seeded inputs are the first seed
    whose merge decisions are all clear of near-ties in eager (graphs/methods/margins.py); the part's entry
    records that seed and each case's smallest merge gap ("margins")."""
    draw = draw_clear_inputs(wrapper)
    if not draw.clear:
        log.warning("%s: no seed of %d leaves every merge decision %.0e clear (widest: seed %d, %.1e at %s); "
                    "a backend may decide a near-tie the other way", stem, draw.draws, draw.min_margin, draw.seed,
                    draw.smallest_gap, draw.site)
    cases = {"seeded": (draw.inputs, draw.outputs)}
    margins = {"seeded": draw.to_json()}
    if stem in bundle.real_inputs:
        inputs = bundle.real_inputs[stem]()
        outputs, found = measure(wrapper, inputs)
        cases["real"] = (inputs, outputs)
        margins["real"] = case_margin(found)
    arrays, outputs = {}, ()
    for case, (inputs, outputs) in cases.items():
        for spec, x in zip(wrapper.input_specs, inputs, strict=True):
            arrays[f"{case}.input.{spec.name}"] = x.numpy()
        for name, y in zip(wrapper.output_names, outputs, strict=True):
            arrays[f"{case}.output.{name}"] = y.float().numpy()
    path = folder / VECTORS_DIR / f"{stem}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)  # a stem may name a subfolder (unet/model)
    np.savez(path, **arrays)
    entry = {"cases": list(cases), **_io_spec(wrapper, outputs)}
    if draw.decisions:  # a part without data-dependent merges has nothing to record
        entry["margins"] = margins
    return entry


def stage_export(bundle: ModelBundle, formats: list[str], out_dir: Path, options: ExportOptions,
                 progress: bool = True) -> tuple[Staging, dict]:
    """Export every part of `bundle` to every format into a staging folder beside `out_dir`
    (an absolute path that output.check_out_dir accepted).

    Returns the staging folder and the manifest (also written there). On any error, Ctrl-C or
    SIGTERM included, the staging folder is removed and the error propagates.
    """
    staging = make_staging(out_dir)
    with staging:
        manifest = _export_into(bundle, formats, staging.path, options, progress)
        if "split" in manifest:  # a split bundle: list its parts with their files
            manifest["split"] = list_parts(manifest)
        write_manifest(staging.path, manifest)
    return staging, manifest


def _export_into(bundle: ModelBundle, formats: list[str], staging: Path, options: ExportOptions,
                 progress: bool) -> dict:
    """Every part to every format (and the bundle's files) into `staging`; returns the manifest."""
    groups = weight_groups(bundle.parts)  # split parts group too: a block's plain and merged parts
    exporters = [get_exporter(f) for f in formats]
    parts, artifacts, pending = {}, [], {}
    for stem, reference in bundle.references.items():  # eager only: its test vectors, nothing lowered
        parts[stem] = _write_vectors(bundle, stem, reference.eval(), staging)
    steps = tqdm(total=len(bundle.parts) * len(formats), desc="export", unit="artifact", disable=not progress)
    for stem, wrapper in bundle.parts.items():
        wrapper.eval()
        parts[stem] = _write_vectors(bundle, stem, wrapper, staging)
        pending[stem] = _prepare(stem, wrapper, options)
        group = groups.get(stem, (stem,))
        for exporter in exporters:
            steps.set_postfix_str(f"{stem}{exporter.suffix}")
            artifacts += _export_format(bundle, exporter, group, stem, pending, staging, options)
            steps.update(1)
        if stem == group[-1]:
            for s in group:
                del pending[s]  # every format has written the group: its programs can go
            gc.collect()  # lowering leaves reference cycles: free them now, not after the next part
            malloc_trim()  # and hand the freed heap back, so that a split 1.3B model's RSS stays flat
    steps.close()
    files = bundle.write_files(staging) + _app_contract(bundle, staging)
    backends = [e.options_for(options).backend for e in exporters]
    return new_manifest(
        bundle.name, bundle.manifest, precision=options.precision, quantize=options.quantize,
        backend=next((b for b in backends if b), None), parts=parts, artifacts=artifacts,
        files={name: sha256_path(staging / name) for name in files},
        test_vectors={stem: sha256_path(staging / VECTORS_DIR / f"{stem}.npz") for stem in parts},
        tools=tool_versions(), weight_groups=weight_group_table(artifacts) if groups else None)


def _app_contract(bundle: ModelBundle, staging: Path) -> list[str]:
    """The contract the apps' ports check themselves against: video-dit-tiny's, or a WanPipeline's."""
    if bundle.app_contract:
        return write_contract(staging)
    pipeline = bundle.manifest.get("pipeline") if bundle.manifest else None
    if isinstance(pipeline, dict) and pipeline.get("kind") == WAN_KIND:
        return write_wan_contract(staging, pipeline)
    return []


def _prepare(stem: str, wrapper: Exportable, options: ExportOptions) -> tuple:
    """(get_program, PartInfo) of a part: its programs traced on first use, its calibration inputs."""
    calibration = tuple(wrapper.example_inputs(seed=s) for s in range(CALIBRATION_SEEDS)) if options.quantize else ()
    info = PartInfo(stem, tuple(s.name for s in wrapper.input_specs), tuple(wrapper.output_names),
                    calibration=calibration, external_weights=wrapper.external_weights,
                    backend=wrapper.executorch_backend)
    return _programs(wrapper, wrapper.example_inputs(seed=0)), info


def _export_format(bundle: ModelBundle, exporter: Exporter, group: tuple[str, ...], stem: str, pending: dict,
                   staging: Path, options: ExportOptions) -> list[dict]:
    """The artifact entries of `stem` in one format: its own file (and its int8 companion where the
    bundle asks for one and the exporter writes one), or, at a weight group's last part, every
    part of the group in one weights store (none before it)."""
    opts = exporter.options_for(options)
    float_io = exporter.float_io(opts)
    if len(group) > 1 and exporter.export_group is not None:
        if stem != group[-1]:
            return []
        path = staging / f"{group[0]}{exporter.suffix}"
        details = exporter.export_group({s: pending[s][0] for s in group}, {s: pending[s][1] for s in group}, path, opts)
        return [_artifact_entry(staging, exporter.name, s, staging / d.pop("path", path.name), float_io,
                                {**d, "weight_group": group[0]}) for s, d in details.items()]
    path = staging / f"{stem}{exporter.suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)  # diffusers' layout: unet/model.onnx
    get_program, info = pending[stem]  # a model that spells its merge per format is traced for this one
    details = exporter.export(functools.partial(get_program, fmt=exporter.name), info, path, opts)
    entries = [_artifact_entry(staging, exporter.name, stem, path, float_io, details)]
    if exporter.int8_companion is not None and opts.quantize is None and stem in bundle.int8_companions:
        small = staging / f"{stem}.int8{exporter.suffix}"
        quantized = exporter.int8_companion(path, small)
        entries.append({**_artifact_entry(staging, exporter.name, stem, small, float_io, {"precision": "int8"}),
                        "companion_of": path.relative_to(staging).as_posix(), "quantize": quantized})
    return entries


def _artifact_entry(staging: Path, fmt: str, stem: str, path: Path, float_io: str, details: dict) -> dict:
    """One manifest artifact entry; `path` is recorded relative to the export folder (UNets write unet/...)."""
    return {"format": fmt, "part": stem, "path": path.relative_to(staging).as_posix(), "sha256": sha256_path(path), "bytes": size_bytes(path),
            "float_io": float_io, **details}
