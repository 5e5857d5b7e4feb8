"""Runners for exported artifacts: ONNX Runtime (CPU) and the ExecuTorch runtime.

Each runner takes and returns numpy arrays in the part's input/output order, so validation,
benchmarks and the samplers share one calling convention whatever the runtime.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

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


class ExecuTorchRunner:
    def __init__(self, path: Path, weights: Path | None = None) -> None:
        """`weights`: the program's .ptd data file when its weights were written outside it."""
        from executorch.runtime import Runtime

        if weights is None:
            self.program = Runtime.get().load_program(str(path))
        else:
            self.program = Runtime.get().load_program(str(path), data_path=str(weights))
        self.method = self.program.load_method("forward")

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        outputs = self.method.execute([torch.from_numpy(np.ascontiguousarray(x)) for x in inputs])
        return [o.detach().numpy() for o in outputs]


RUNNERS = {"onnx": OnnxRunner, "executorch": ExecuTorchRunner}


def load_runner(fmt: str, path: Path, weights: Path | None = None):
    """A runner for one artifact; `weights` is an ExecuTorch .ptd (ONNX finds its external data itself)."""
    if fmt not in RUNNERS:
        raise InputError(f"no Linux runner for format {fmt!r}; runners: {', '.join(RUNNERS)}")
    return ExecuTorchRunner(path, weights) if fmt == "executorch" else RUNNERS[fmt](path)
