"""Runners for exported artifacts, one module per runtime: ONNX Runtime (onnxruntime.py, with
ort_shared.py for sessions that share prepacked weights), the ExecuTorch runtime (executorch.py,
with xnnpack_options.py for XNNPACK's weight cache) and Core AI's Linux CPU runtime (coreai.py).
The private APIs they call are fenced by version (fences.py).

Each runner takes and returns numpy arrays in the part's input/output order and has `close()`,
so validation, benchmarks and the samplers share one calling convention whatever the runtime.
Which runtime runs which format is manifest.FORMATS.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from ...graphs.errors import InputError
from ..manifest import FORMATS
from ..manifest_reader import Artifact, Manifest, read_manifest
from .coreai import CoreAIRunner
from .executorch import ExecuTorchRunner
from .onnxruntime import OnnxRunner


class Runner(Protocol):
    """What every runner offers: run (numpy in, numpy out, the part's order), close, and `with`."""

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Runner: ...

    def __exit__(self, *exc: object) -> None: ...


RUNTIMES = {"onnxruntime": OnnxRunner, "executorch": ExecuTorchRunner, "coreai": CoreAIRunner}


def load_runner(fmt: str, path: Path, weights: Path | None = None, method: str | None = None,
                threads: int | None = None) -> Runner:
    """A runner for one artifact file of format `fmt`; `weights` is an ExecuTorch .ptd (ONNX finds
    its external data itself), `method` the artifact's method in a shared ExecuTorch program or its
    function in a shared Core AI asset, `threads` ONNX Runtime's intra-op threads."""
    runtime = FORMATS[fmt].runtime if fmt in FORMATS else None
    if runtime is None:
        runners = ", ".join(f.name for f in FORMATS.values() if f.runtime)
        raise InputError(f"no Linux runner for format {fmt!r}; runners: {runners}")
    if runtime == "onnxruntime":
        return OnnxRunner(path, threads=threads)
    if runtime == "coreai":
        return CoreAIRunner(path, method)
    return ExecuTorchRunner(path, weights, method)


def artifact_runner(folder: Path, artifact: Artifact, threads: int | None = None) -> Runner:
    """The runner of a manifest artifact: its file, its weights file and its method or function
    (`threads`: ONNX Runtime's intra-op threads)."""
    weights = folder / artifact.weights.path if artifact.weights is not None else None
    return load_runner(artifact.format, folder / artifact.path, weights, artifact.entry_name, threads)


def part_runner(folder: Path, fmt: str, part: str, threads: int | None = None,
                manifest: Manifest | None = None) -> Runner:
    """The runner of `part` in format `fmt` of an export folder, as its manifest lays it out (a
    part whose weights are shared lives in its group's file: export/shared.py)."""
    artifact = (manifest or read_manifest(folder)).artifact(fmt, part)
    if artifact is None:
        raise InputError(f"{folder} has no {fmt} artifact of {part}; export it with --format {fmt}")
    return artifact_runner(folder, artifact, threads)
