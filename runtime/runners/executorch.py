"""The ExecuTorch runtime (Python bindings): programs shared by the runners of their methods, the
runner, a loaded method's signature, and the runtime's thread count. XNNPACK's weight cache is
xnnpack_options.py; the thread count goes through a private binding, fenced (fences.py)."""

from __future__ import annotations

import logging
import weakref
from pathlib import Path

import numpy as np
import torch

from .fences import EXECUTORCH_THREADS
from .signature import Signature, TensorSig
from .xnnpack_options import ensure_weight_cache

log = logging.getLogger(__name__)

_DTYPES = {0: "uint8", 1: "int8", 3: "int32", 4: "int64", 5: "float16", 6: "float32", 7: "float64", 11: "bool"}


class Program:
    """An ExecuTorch Program, held by every runner of one of its methods (weak-referenceable)."""

    def __init__(self, program) -> None:
        self.program = program


# (pte, ptd) -> the loaded program, while a runner holds it: the methods of one shared .pte
# (docs/shared_weights.md) come from one Program, which maps the file and its weights once.
_PROGRAMS: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def executorch_program(path: Path, weights: Path | None = None) -> Program:
    """The loaded program of `path` (and its .ptd), shared while a runner holds it. XNNPACK's weight
    cache is turned on first (xnnpack_options.py): methods with the same weights pack them once."""
    from executorch.runtime import Runtime  # deferred: a heavy runtime

    ensure_weight_cache()
    key = (str(Path(path).resolve()), str(Path(weights).resolve()) if weights else None)
    held = _PROGRAMS.get(key)
    if held is None:
        data = {} if weights is None else {"data_path": str(weights)}
        held = Program(Runtime.get().load_program(str(path), **data))
        _PROGRAMS[key] = held
    return held


def executorch_signature(method) -> Signature:
    """(inputs, outputs) of a loaded ExecuTorch method as (None, shape, dtype): programs keep no names."""
    meta = method.metadata

    def spec(tensor) -> TensorSig:
        return None, tuple(tensor.sizes()), _DTYPES.get(int(tensor.dtype()), str(tensor.dtype()))

    return ([spec(meta.input_tensor_meta(i)) for i in range(meta.num_inputs())],
            [spec(meta.output_tensor_meta(i)) for i in range(meta.num_outputs())])


class ExecuTorchRunner:
    def __init__(self, path: Path, weights: Path | None = None, method: str | None = None) -> None:
        """`weights`: the program's .ptd data file when its weights were written outside it;
        `method`: the part's method in a shared .pte (manifest `method`), None: `forward`."""
        self._program = executorch_program(path, weights)
        self.program = self._program.program
        self.method = self.program.load_method(method or "forward")

    def signature(self) -> Signature:
        return executorch_signature(self.method)

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        outputs = self.method.execute([torch.from_numpy(np.ascontiguousarray(x)) for x in inputs])
        return [o.detach().numpy() for o in outputs]

    def close(self) -> None:
        """Drop the method (and the program, when no other runner holds it)."""
        self.method = self.program = self._program = None

    def __enter__(self) -> ExecuTorchRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def executorch_threads() -> int:
    """The ExecuTorch runtime's thread count in this process."""
    from executorch.extension.pybindings import portable_lib  # deferred: a heavy runtime

    return portable_lib._threadpool_get_thread_count()


def set_executorch_threads(threads: int) -> int:
    """Resize the ExecuTorch runtime's thread pool to `threads` (for methods loaded from now on)
    and return the count in effect. The bindings offer only a private call for it; where it is
    fenced off (fences.py) the pool keeps its size and a warning says so."""
    from executorch.extension.pybindings import portable_lib  # deferred: a heavy runtime

    if executorch_threads() == threads:
        return threads
    if EXECUTORCH_THREADS.open():
        portable_lib._unsafe_reset_threadpool(threads)
    else:
        log.warning("ExecuTorch runs at %d threads, not %d (%s)", executorch_threads(), threads,
                    EXECUTORCH_THREADS.fallback)
    return executorch_threads()
