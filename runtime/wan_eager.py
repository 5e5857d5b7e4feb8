"""`tomobile generate --runtime eager` on a WanPipeline export: the pipeline's parts in PyTorch.

The export folder holds the parts as ONNX, ExecuTorch or Core AI files, not as PyTorch weights, so
the eager run rebuilds them as the export built them: from the source pipeline folder the manifest
names (`pipeline.source`), at the export's clip shape, text length and TDTM rule
(graphs/models/wan_pipeline.py). Before the run each rebuilt part reproduces the export's test
vectors (the eager outputs every artifact was validated against) within the fp32 tolerance, so
a source folder changed since the export is refused in one line instead of giving another clip.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..graphs.errors import InputError
from ..graphs.models.exportable import Exportable
from ..graphs.models.wan_pipeline import load_wan_pipeline
from ..graphs.spec.config import MergeConfig
from .report import FAIL, compare
from .validate import vector_cases

log = logging.getLogger(__name__)

Runner = Callable[..., list[np.ndarray]]


class EagerSourceError(InputError):
    """The source folder of an export is gone or no longer holds the exported model: one line, exit 2."""


def eager_parts(folder: Path, spec: dict, merge: dict, parts: list[str]) -> dict[str, Runner]:
    """`parts` of the WanPipeline export at `folder` (its manifest's `pipeline` and `merge` entries) as
    eager callables, numpy in and numpy out, each checked against the export's test vectors."""
    source = spec.get("source")
    if not isinstance(source, str) or not (Path(source) / "model_index.json").is_file():
        raise EagerSourceError(f"{folder} was exported from {source or 'a folder it does not record'}, which holds no "
                               "WanPipeline now; --runtime eager rebuilds the parts from it (use --runtime onnxruntime, "
                               "executorch or coreai for the exported files, or export again)")
    tdtm = merge.get("method") == "tdtm"
    bundle = load_wan_pipeline(Path(source), MergeConfig.parse("tdtm" if tdtm else "none"),
                               size=f"{spec['height']}x{spec['width']}", frames=int(spec["frames"]),
                               tdtm_odd=merge.get("odd_frames") if tdtm else None, text_length=int(spec["text_tokens"]))
    modules = {**bundle.parts, **getattr(bundle, "references", {})}
    missing = [p for p in parts if p not in modules]
    if missing:
        raise EagerSourceError(f"{source} gives no {', '.join(missing)} at this export's settings; export again")
    for stem in parts:
        _check_against_vectors(folder, stem, modules[stem], source)
    return {stem: _runner(modules[stem]) for stem in parts}


def _check_against_vectors(folder: Path, stem: str, module: Exportable, source: str) -> None:
    """EagerSourceError unless `module` gives the export's recorded eager outputs on its recorded inputs."""
    for case, (inputs, expected) in vector_cases(folder, stem).items():
        with torch.no_grad():
            got = module(*(torch.from_numpy(x) for x in inputs))
        for name, out in zip(module.output_names, got, strict=True):
            err, _, status, _ = compare(expected[name], out.float().numpy(), "fp32")
            if status == FAIL:
                raise EagerSourceError(f"{source} no longer holds the model exported to {folder}: its {stem} differs "
                                       f"from the export's test vectors ({case} {name}, max abs error {err:.2e}); "
                                       "export again")
    log.info("eager %s reproduces the export's test vectors", stem)


def _runner(module: Exportable) -> Runner:
    @torch.no_grad()
    def run(*arrays: np.ndarray) -> list[np.ndarray]:
        return [out.numpy() for out in module(*(torch.from_numpy(np.ascontiguousarray(a)) for a in arrays))]

    return run

