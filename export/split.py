"""`tomobile export MODEL --split blocks`: the denoiser's ordered parts (graphs/models/video_parts.py) go
into the same export as the monolithic denoisers, and the manifest's `split` entry lists them in
order with inputs, outputs, and per format the files (model and weights), their sizes and sha256,
so an app (or runtime/streaming.py) can stream them without Python."""

from __future__ import annotations

from pathlib import Path

import torch

from ..graphs.errors import InputError
from ..graphs.models.exportable import ModelBundle
from ..graphs.models.video_parts import run_chain, split_denoisers
from ..runtime.report import OutputCheck, compare
from ..runtime.validate import vector_cases


def split_bundle(bundle: ModelBundle, kind: str, quantize: str | None) -> ModelBundle:
    """The bundle with its denoiser parts added; ValueError (one line) when it cannot be split."""
    if quantize:
        raise InputError(f"--split {kind} writes fp32 parts (fp16 with --precision for ExecuTorch); "
                         f"--quantize {quantize} is not supported with --split")
    return bundle.splitter(bundle, kind) if bundle.splitter is not None else split_denoisers(bundle, kind)


def list_parts(manifest: dict) -> dict:
    """manifest['split'] with `parts`: every part in stream order (the first variant's sequence,
    then parts only other variants use) with its inputs, outputs and files per format."""
    split = dict(manifest["split"])
    order: list[str] = []
    for seq in split["sequences"].values():
        order.extend(name for name in seq if name not in order)
    by_part: dict[str, dict] = {}
    for a in manifest["artifacts"]:
        if a["part"] in order:
            record = {"path": a["path"], "sha256": a["sha256"], "bytes": a["bytes"]}
            for key in ("weights", "method", "function"):  # shared weights: the file's method / function
                if key in a:
                    record[key] = a[key]
            record["total_bytes"] = a["bytes"] + a.get("weights", {}).get("bytes", 0)
            by_part.setdefault(a["part"], {})[a["format"]] = record
    io = manifest["parts"]
    split["parts"] = [{"name": name, "inputs": io[name]["inputs"], "outputs": io[name]["outputs"],
                       "files": by_part.get(name, {})} for name in order]
    return split


def eager_chain_checks(bundle: ModelBundle, folder: Path) -> list[OutputCheck]:
    """The eager parts chained in order against the eager monolithic model, on its test vectors in
    `folder` (one row per variant and case, fp32 bound): the split itself is checked apart from
    any runtime, the exported parts each against their own eager vectors (runtime/validate.py)."""
    split = bundle.manifest.get("split")
    if split is None:
        return []
    rows = []
    for variant, sequence in split["sequences"].items():
        whole = bundle.references.get(variant) or bundle.parts[variant]
        for case, (inputs, expected) in vector_cases(folder, variant).items():
            env = dict(zip((s.name for s in whole.input_specs), map(torch.from_numpy, inputs), strict=True))
            name = whole.output_names[0]
            out = run_chain(bundle.parts, sequence, env)[name].float().numpy()
            err, quality, status, note = compare(expected[name], out, "fp32")
            rows.append(OutputCheck(f"chain {variant} (eager parts)", case, name, out.shape, err, quality, status, note))
    return rows
