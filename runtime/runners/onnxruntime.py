"""ONNX Runtime (CPU): session options as every tomobile session takes them, the runner, and a
loaded session's signature. Sessions that share one weights file and one prepacked copy of it
are ort_shared.py (a private API, fenced)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .signature import Signature, TensorSig

_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
           "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(bool)": "bool", "tensor(int8)": "int8",
           "tensor(uint8)": "uint8"}


def ort_session_options(threads: int | None = None, spinning: bool = True, config: dict[str, str] | None = None):
    """ONNX Runtime CPU session options, as every tomobile session takes them: `threads` intra-op
    threads (None: ORT's default), `spinning=False` for sessions that take turns with others (an
    idle pool that spins steals the cores of the next session's run), extra session config entries,
    and errors only in ORT's log."""
    import onnxruntime as ort  # deferred: a heavy runtime, loaded by the paths that run ONNX

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


def ort_signature(session) -> Signature:
    """(inputs, outputs) of an ONNX Runtime session as (name, shape, dtype); a symbolic dim is -1."""
    def spec(arg) -> TensorSig:
        return arg.name, tuple(d if isinstance(d, int) else -1 for d in arg.shape), _DTYPES.get(arg.type, arg.type)

    return [spec(a) for a in session.get_inputs()], [spec(a) for a in session.get_outputs()]


class OnnxRunner:
    """An ONNX file on ONNX Runtime's CPU provider. `profile`: a path prefix for ONNX Runtime's
    profiler file (profiling on), or None (off); without a prefix ORT would write
    onnxruntime_profile_*.json into the current folder. `spinning=False`: the thread pool sleeps
    as soon as a run ends. `config`: extra session config entries."""

    def __init__(self, path: Path, threads: int | None = None, profile: Path | None = None,
                 spinning: bool = True, config: dict[str, str] | None = None, arena: bool = True) -> None:
        import onnxruntime as ort  # deferred: a heavy runtime

        opts = ort_session_options(threads, spinning, config)
        opts.enable_cpu_mem_arena = arena
        if profile is not None:
            opts.enable_profiling = True
            opts.profile_file_prefix = str(profile)
        self.session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]

    def signature(self) -> Signature:
        return ort_signature(self.session)

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return self.session.run(None, dict(zip(self.input_names, inputs, strict=True)))

    def end_profiling(self) -> str:
        return self.session.end_profiling()

    def close(self) -> None:
        self.session = None

    def __enter__(self) -> OnnxRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
