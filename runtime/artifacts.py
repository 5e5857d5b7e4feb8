"""Runners for exported artifacts: ONNX Runtime (CPU) and the ExecuTorch runtime.

Each runner takes and returns numpy arrays in the part's input/output order, so validation,
benchmarks and the samplers share one calling convention whatever the runtime.
"""

from __future__ import annotations

import logging
import weakref
from pathlib import Path

import numpy as np

from ..graphs.errors import InputError

log = logging.getLogger(__name__)


def ort_session_options(threads: int | None = None, spinning: bool = True, config: dict[str, str] | None = None):
    """ONNX Runtime CPU session options, as every tomobile session takes them: `threads` intra-op
    threads (None: ORT's default), `spinning=False` for sessions that take turns with others (an
    idle pool that spins steals the cores of the next session's run), extra session config entries,
    and errors only in ORT's log."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    if not spinning:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    for key, value in (config or {}).items():
        opts.add_session_config_entry(key, value)
    opts.log_severity_level = 3
    return opts


class OnnxRunner:
    """`profile`: a path prefix for ONNX Runtime's profiler file (profiling on), or None (off).
    Without a prefix ORT would write onnxruntime_profile_*.json into the current folder.
    `spinning=False`: the thread pool sleeps as soon as a run ends."""

    def __init__(self, path: Path, threads: int | None = None, profile: Path | None = None,
                 spinning: bool = True) -> None:
        import onnxruntime as ort

        opts = ort_session_options(threads, spinning)
        if profile is not None:
            opts.enable_profiling = True
            opts.profile_file_prefix = str(profile)
        self.session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return self.session.run(None, dict(zip(self.input_names, inputs, strict=True)))

    def end_profiling(self) -> str:
        return self.session.end_profiling()


class _Program:
    """An ExecuTorch Program, held by every runner of one of its methods (weak-referenceable)."""

    def __init__(self, program) -> None:
        self.program = program


# (pte, ptd) -> the loaded program, while a runner holds it: the methods of one shared .pte
# (docs/shared_weights.md) come from one Program, which maps the file and its weights once.
_PROGRAMS: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def executorch_program(path: Path, weights: Path | None = None) -> _Program:
    from executorch.runtime import Runtime

    key = (str(Path(path).resolve()), str(Path(weights).resolve()) if weights else None)
    held = _PROGRAMS.get(key)
    if held is None:
        data = {} if weights is None else {"data_path": str(weights)}
        held = _Program(Runtime.get().load_program(str(path), **data))
        _PROGRAMS[key] = held
    return held


class ExecuTorchRunner:
    def __init__(self, path: Path, weights: Path | None = None, method: str | None = None) -> None:
        """`weights`: the program's .ptd data file when its weights were written outside it;
        `method`: the part's method in a shared .pte (manifest `method`), None: `forward`."""
        self._program = executorch_program(path, weights)
        self.program = self._program.program
        self.method = self.program.load_method(method or "forward")

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        import torch

        outputs = self.method.execute([torch.from_numpy(np.ascontiguousarray(x)) for x in inputs])
        return [o.detach().numpy() for o in outputs]


RUNNERS = {"onnx": OnnxRunner, "executorch": ExecuTorchRunner}


def load_runner(fmt: str, path: Path, weights: Path | None = None, method: str | None = None):
    """A runner for one artifact; `weights` is an ExecuTorch .ptd (ONNX finds its external data
    itself), `method` the artifact's method in a shared ExecuTorch program."""
    if fmt not in RUNNERS:
        raise InputError(f"no Linux runner for format {fmt!r}; runners: {', '.join(RUNNERS)}")
    return ExecuTorchRunner(path, weights, method) if fmt == "executorch" else RUNNERS[fmt](path)


def artifact_runner(folder: Path, artifact: dict, threads: int | None = None):
    """The runner of a manifest artifact entry: its file, its weights file and its method
    (`threads`: ONNX Runtime's intra-op threads)."""
    from .manifest import inside

    if artifact["format"] == "onnx":
        return OnnxRunner(inside(folder, artifact["path"]), threads=threads)
    weights = inside(folder, artifact["weights"]["path"]) if "weights" in artifact else None
    return load_runner(artifact["format"], inside(folder, artifact["path"]), weights, artifact.get("method"))


def part_runner(folder: Path, fmt: str, part: str, threads: int | None = None):
    """The runner of `part` in format `fmt` of an export folder, as its manifest lays it out (a
    part whose weights are shared lives in its group's file: export/shared.py)."""
    from .manifest import load_manifest

    for artifact in load_manifest(folder)["artifacts"]:
        if artifact["format"] == fmt and artifact["part"] == part:
            return artifact_runner(folder, artifact, threads)
    raise InputError(f"{folder} has no {fmt} artifact of {part}; export it with --format {fmt}")
