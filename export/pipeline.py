"""Export a ModelBundle to the asked formats in a staging folder; move it into place at the end.

Nothing is written to the output folder until every artifact exported: the work happens in a
hidden sibling folder that `output.finalize` renames into place, so a failure leaves no
half-written DIR (see export/output.py for what DIR may be).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from tomobile.graphs.exportable import Exportable, ModelBundle
from tomobile.graphs.merge import MergeOps, merge_ops
from tomobile.graphs.video_zoo import MODEL_NAME as VIDEO_MODEL
from tomobile.runtime.contract import write_contract

from .executorch_int8 import CALIBRATION_SEEDS
from .output import MANIFEST, Staging, discard, make_staging
from .registry import ExportOptions, PartInfo, get_exporter, get_group_exporter
from .shared import weight_group_table, weight_groups

log = logging.getLogger(__name__)

VECTORS_DIR = "test_vectors"
# Files generated for the apps beyond the parts, per model: writer(folder) -> the relative paths it wrote.
FILE_WRITERS: dict[str, Callable[[Path], list[str]]] = {VIDEO_MODEL: write_contract}
_TOOLS = ("tomobile", "torch", "transformers", "executorch", "coremltools", "onnx", "onnxruntime", "onnxscript")


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
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


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
    (graphs/merge.py MergeOps: the same assignment, ops chosen per runtime), traced once.

    Every call returns a deep copy: lowering changes a program in place (ExecuTorch's
    constant_prop_pass lifts new constants into it), and what one exporter did must not reach the
    next one, whatever the order of the formats."""
    cache: dict[tuple[str, MergeOps], torch.export.ExportedProgram] = {}

    def get(precision: str, ops: MergeOps = MergeOps.ARITHMETIC) -> torch.export.ExportedProgram:
        if (precision, ops) not in cache:
            module, args = wrapper, inputs
            if precision == "fp16":
                module = copy.deepcopy(wrapper).half()
                args = tuple(a.half() if a.is_floating_point() else a for a in inputs)
            with torch.no_grad(), merge_ops(ops):
                cache[precision, ops] = torch.export.export(module, args, strict=False)
        return copy.deepcopy(cache[precision, ops])

    return get


def _write_vectors(bundle: ModelBundle, stem: str, wrapper: Exportable, folder: Path) -> dict:
    """Seeded (and real, where the model has them) inputs with eager fp32 outputs: the reference
    every artifact is checked against, here and in the apps."""
    cases = {"seeded": wrapper.example_inputs(seed=0)}
    if stem in bundle.real_inputs:
        cases["real"] = bundle.real_inputs[stem]()
    arrays, outputs = {}, ()
    with torch.no_grad():
        for case, inputs in cases.items():
            outputs = wrapper(*inputs)
            for spec, x in zip(wrapper.input_specs, inputs, strict=True):
                arrays[f"{case}.input.{spec.name}"] = x.numpy()
            for name, y in zip(wrapper.output_names, outputs, strict=True):
                arrays[f"{case}.output.{name}"] = y.float().numpy()
    path = folder / VECTORS_DIR / f"{stem}.npz"
    path.parent.mkdir(exist_ok=True)
    np.savez(path, **arrays)
    return {"cases": list(cases), **_io_spec(wrapper, outputs)}


def stage_export(bundle: ModelBundle, formats: list[str], out_dir: Path, options: ExportOptions,
                 progress: bool = True) -> tuple[Staging, dict]:
    """Export every part of `bundle` to every format into a staging folder beside `out_dir`
    (an absolute path that output.check_out_dir accepted).

    Returns the staging folder and the manifest (also written there). On any error, Ctrl-C or
    SIGTERM included, the staging folder is removed and the error propagates.
    """
    staging = make_staging(out_dir)
    try:
        manifest = _export_into(bundle, formats, staging.path, options, progress)
        write_manifest(staging.path, manifest)
    except BaseException:
        discard(staging)
        raise
    return staging, manifest


def _export_into(bundle: ModelBundle, formats: list[str], staging: Path, options: ExportOptions,
                 progress: bool) -> dict:
    # Split parts (weights in a .ptd / .onnx.data) stay one file per part: a multi-method .pte on one
    # .ptd failed at load_method (error 0x24) in the streaming tests; see docs/shared_weights.md.
    shareable = {stem: w for stem, w in bundle.parts.items() if not w.external_weights}
    parts, artifacts, groups, pending = {}, [], weight_groups(shareable), {}
    steps = tqdm(total=len(bundle.parts) * len(formats), desc="export", unit="artifact", disable=not progress)
    for stem, wrapper in bundle.parts.items():
        wrapper.eval()
        parts[stem] = _write_vectors(bundle, stem, wrapper, staging)
        get_program = _programs(wrapper, wrapper.example_inputs(seed=0))
        calibration = tuple(wrapper.example_inputs(seed=s) for s in range(CALIBRATION_SEEDS)) if options.quantize else ()
        info = PartInfo(stem, tuple(s.name for s in wrapper.input_specs), tuple(wrapper.output_names),
                        calibration=calibration, external_weights=wrapper.external_weights)
        pending[stem] = (get_program, info)
        for fmt in formats:
            exporter = get_exporter(fmt)
            steps.set_postfix_str(f"{stem}{exporter.suffix}")
            opts = exporter.options_for(options)
            group, export_group = groups.get(stem), get_group_exporter(fmt)
            if group is None or export_group is None:
                path = staging / f"{stem}{exporter.suffix}"
                artifacts.append(_artifact(fmt, stem, path, opts, exporter.export(get_program, info, path, opts)))
            elif stem == group[-1]:  # the group's last part: export them all, weights once
                path = staging / f"{group[0]}{exporter.suffix}"
                details = export_group({s: pending[s][0] for s in group}, {s: pending[s][1] for s in group}, path, opts)
                artifacts += [_artifact(fmt, s, staging / d.pop("path", path.name), opts, {**d, "weight_group": group[0]})
                              for s, d in details.items()]
            steps.update(1)
        if stem not in groups or stem == groups[stem][-1]:
            for s in groups.get(stem, (stem,)):
                del pending[s]  # every format has written the group: its programs can go
    steps.close()
    files = bundle.write_files(staging)
    files += FILE_WRITERS[bundle.name](staging) if bundle.name in FILE_WRITERS else []
    backends = [get_exporter(f).options_for(options).backend for f in formats]
    return {
        "tomobile_manifest": 1,
        "model": bundle.name,
        **bundle.manifest,
        # What was asked; each artifact entry says what it got (check_options refused the rest).
        "precision": options.precision,
        "quantize": options.quantize,
        "backend": next((b for b in backends if b), None),
        "parts": parts,
        "artifacts": artifacts,
        **({"weight_groups": weight_group_table(artifacts)} if groups else {}),
        "files": {name: sha256_path(staging / name) for name in files},
        "test_vectors": {stem: sha256_path(staging / VECTORS_DIR / f"{stem}.npz") for stem in parts},
        "tools": tool_versions(),
    }


def _artifact(fmt: str, stem: str, path: Path, opts: ExportOptions, details: dict) -> dict:
    # An fp16 graph (ExecuTorch) takes and returns float16; Core ML keeps float32 I/O.
    float_io = "float16" if fmt == "executorch" and opts.precision == "fp16" else "float32"
    return {"format": fmt, "part": stem, "path": path.name, "sha256": sha256_path(path),
            "bytes": size_bytes(path), "float_io": float_io, **details}


def write_manifest(folder: Path, manifest: dict) -> None:
    tmp = folder / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    tmp.replace(folder / MANIFEST)
