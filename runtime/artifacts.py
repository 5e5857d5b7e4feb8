"""Runners for exported artifacts: ONNX Runtime (CPU), the ExecuTorch runtime and Core AI's Linux
CPU runtime.

Each runner takes and returns numpy arrays in the part's input/output order, so validation,
benchmarks and the samplers share one calling convention whatever the runtime.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import logging
import os
import re
import sys
import tempfile
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import numpy as np
import torch

from ..graphs.errors import InputError
from .manifest import entry_name, inside, load_manifest
from .xnnpack_options import ensure_weight_cache

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


Signature = tuple[list[tuple[str | None, tuple[int, ...], str]], list[tuple[str | None, tuple[int, ...], str]]]
_ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
               "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(bool)": "bool", "tensor(int8)": "int8",
               "tensor(uint8)": "uint8"}
_ET_DTYPES = {0: "uint8", 1: "int8", 3: "int32", 4: "int64", 5: "float16", 6: "float32", 7: "float64", 11: "bool"}


def ort_signature(session) -> Signature:
    """(inputs, outputs) of an ONNX Runtime session as (name, shape, dtype); a symbolic dim is -1."""
    def spec(arg) -> tuple[str, tuple[int, ...], str]:
        return arg.name, tuple(d if isinstance(d, int) else -1 for d in arg.shape), _ORT_DTYPES.get(arg.type, arg.type)

    return [spec(a) for a in session.get_inputs()], [spec(a) for a in session.get_outputs()]


def executorch_signature(method) -> Signature:
    """(inputs, outputs) of a loaded ExecuTorch method as (None, shape, dtype): programs keep no names."""
    meta = method.metadata

    def spec(tensor) -> tuple[None, tuple[int, ...], str]:
        return None, tuple(tensor.sizes()), _ET_DTYPES.get(int(tensor.dtype()), str(tensor.dtype()))

    return ([spec(meta.input_tensor_meta(i)) for i in range(meta.num_inputs())],
            [spec(meta.output_tensor_meta(i)) for i in range(meta.num_outputs())])


def signature_mismatch(got: Signature, inputs: list[dict], outputs: list[dict], float_dtype: str = "float32"
                       ) -> str | None:
    """What differs between a loaded program's (inputs, outputs) and the manifest's specs ({name,
    shape, dtype}), or None; `float_dtype` replaces float32 for programs with float16 I/O."""
    for side, have, want in (("input", got[0], inputs), ("output", got[1], outputs)):
        if len(have) != len(want):
            return f"{len(have)} {side}s, the manifest lists {len(want)}"
        for (name, shape, dtype), spec in zip(have, want, strict=True):
            expected = float_dtype if spec.get("dtype", "float32") == "float32" else spec.get("dtype")
            if name is not None and name != spec["name"]:
                return f"{side} {name!r} where the manifest lists {spec['name']!r}"
            if len(shape) != len(spec["shape"]) or any(d not in (-1, s) for d, s in zip(shape, spec["shape"])):
                return f"{side} {spec['name']!r} of shape {list(shape)}, the manifest lists {list(spec['shape'])}"
            if expected is not None and dtype != expected:
                return f"{side} {spec['name']!r} of dtype {dtype}, the manifest lists {expected}"
    return None


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
    """The loaded program of `path` (and its .ptd), shared while a runner holds it. XNNPACK's weight
    cache is turned on first (xnnpack_options.py): methods with the same weights pack them once."""
    from executorch.runtime import Runtime

    ensure_weight_cache()
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
        outputs = self.method.execute([torch.from_numpy(np.ascontiguousarray(x)) for x in inputs])
        return [o.detach().numpy() for o in outputs]


# What Core AI's native runtime writes to file descriptor 2 on every load: harmless.
_COREAI_CHATTER = re.compile(r"ODIE \[\w+\]: Loading function ")


@contextlib.contextmanager
def _native_stderr_filtered(pattern: re.Pattern[str]) -> Iterator[None]:
    """Run the block with file descriptor 2 in a temporary file, then pass every line that does not
    match `pattern` on to sys.stderr (native code writes past Python's sys.stderr)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            for line in held.read().decode(errors="replace").splitlines(keepends=True):
                if not pattern.match(line):
                    sys.stderr.write(line)


def _compiled_maps() -> set[tuple[int, int]]:
    """Address ranges of this process's mappings of Core AI's compiled models: the runtime compiles
    an asset into a temporary `*.aimodelx/` folder, maps the result shared read-only and deletes the
    folder."""
    if not sys.platform.startswith("linux"):
        return set()
    ranges = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            if ".aimodelx/" in line:
                lo, hi = line.split(None, 1)[0].split("-")
                ranges.add((int(lo, 16), int(hi, 16)))
    return ranges


_MADV_DONTNEED = 4


def _drop_resident_pages(ranges: set[tuple[int, int]]) -> None:
    """madvise(MADV_DONTNEED) over read-only shared file mappings: their pages leave this process's
    resident set; a later access (none is expected) reads them from the file again, so nothing
    can break. (A part that the streamer's prefetch thread loads at the same moment may have its
    new mapping counted to this load too; dropping its pages costs a re-read, not a wrong result.)"""
    if not ranges:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    for lo, hi in ranges:
        libc.madvise(lo, hi - lo, _MADV_DONTNEED)


# asset path -> (its files' names, sizes and mtimes; the folder holding its compiled form)
_COMPILED: dict[str, tuple[tuple, tempfile.TemporaryDirectory]] = {}
_COMPILED_LOCK = threading.Lock()


def _compiled_form(asset, path: Path) -> Path | None:
    """The folder of `asset`'s compiled form (ODIX), compiled once per process and asset version;
    None where this coreai-core compiles otherwise (macOS's OS runtime, another version).

    On Linux, `AIModelAsset.executable()` compiles the asset into a temporary `.aimodelx` folder on
    every load and deletes it while the runtime still maps the result; the runtime never unmaps it
    (coreai-core 1.0.0b3), so every load held the asset's size on disk until the process ended
    (10 loads of a 33.6 MB asset: 336 MB of /tmp) and paid the compile again. Loading one kept
    compiled folder maps one file however often a part is loaded."""
    if not sys.platform.startswith("linux") or not hasattr(asset, "_write_odix"):
        return None
    key = str(path.resolve())
    stamp = tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in sorted(path.iterdir()) if f.is_file())
    with _COMPILED_LOCK:
        entry = _COMPILED.get(key)
        if entry is None or entry[0] != stamp:  # a re-exported asset at the same path compiles again
            folder = tempfile.TemporaryDirectory(prefix="tomobile-", suffix=".aimodelx")
            asset._write_odix(Path(folder.name))  # what executable() runs, into a folder that stays
            entry = _COMPILED[key] = (stamp, folder)
        return Path(entry[1].name)


class _CoreAIAsset:
    """A loaded Core AI asset (its compiled model on its own event loop), held by every runner of
    one of its functions: the functions of one asset (a weight group's variants,
    docs/shared_weights.md) share its loaded weights. `release` by the last holder closes it.

    coreai-core 1.0.0b3 keeps a loaded model mapped after it is released, so each load and close
    of an asset left its whole size in RssFile: block streaming grew by a part per load. On release
    the pages of the mappings that this load made are dropped from the resident set
    (`_drop_resident_pages`), and every load of one asset maps one compiled file (`_compiled_form`)."""

    def __init__(self, path: Path) -> None:
        from coreai.authoring.asset import AIModelAsset  # deferred: a heavy optional runtime
        from coreai.runtime import AIModel

        self.path = Path(path)
        self.loop = asyncio.new_event_loop()
        before = _compiled_maps()
        asset = AIModelAsset.load(self.path)
        try:
            compiled = _compiled_form(asset, self.path)
            if compiled is None:
                self._context = asset.executable()
                self.model = self.loop.run_until_complete(self._context.__aenter__())
            else:
                self._context = None
                self.model = self.loop.run_until_complete(AIModel.load(path=compiled))
        except BaseException:
            self.loop.close()
            raise
        self._maps = _compiled_maps() - before
        self.holders = 0

    def function(self, name: str):
        before = _compiled_maps()
        with _native_stderr_filtered(_COREAI_CHATTER):
            try:
                found = self.model.load_function(name)
            except KeyError:  # the runtime's word for a name the asset lacks
                found = None
        self._maps |= _compiled_maps() - before
        if found is None:
            raise RuntimeError(f"{self.path} has no function {name!r}")
        return found

    def release(self) -> None:
        self.holders -= 1
        if self.holders > 0 or self.loop.is_closed():
            return
        _ASSETS.pop(str(self.path.resolve()), None)
        self.model = None
        try:
            if self._context is not None:
                self.loop.run_until_complete(self._context.__aexit__(None, None, None))
        finally:
            self.loop.close()
            _drop_resident_pages(self._maps)


# path -> the loaded asset, while a runner holds it.
_ASSETS: dict[str, _CoreAIAsset] = {}


def exit_process(code: int) -> NoReturn:
    """End the process with `code`, as `sys.exit` does. Where Core AI's runtime was loaded, Python's
    exit handlers run and the process ends without the interpreter's teardown: there, a Dispatch
    worker of the runtime's Swift side that drops a Python object takes the GIL from a finalizing
    interpreter, Python ends that thread, and the Swift runtime aborts the process ("C++ exception
    handling detected but the Swift runtime was compiled with exceptions disabled", SIGABRT after
    the work is done; about one exit in ten here)."""
    if "coreai.runtime" not in sys.modules:
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


class CoreAIRunner:
    """A Core AI asset (`.aimodel` folder) run through coreai-core's Linux runtime, with the same
    `run(list) -> list` as the other runners. The runtime's API is async (AIModelAsset.load,
    `async with asset.executable()`, load_function(name), `await f({name: NDArray})`); the runner
    keeps its own event loop so callers stay synchronous. The compiled model stays loaded between
    calls; `close()` (or the end of a `with` block) releases it. Runners of several functions of one
    asset (manifest `function`; None: `main`) share one loaded asset.

    Inputs go in the asset's input order; outputs come back in its output order, which the
    exporter set to the part's output names. Core AI converts int64 inputs (token ids) to int32:
    integer inputs are cast to the dtype the asset declares (ids fit in 32 bits), floats never."""

    def __init__(self, path: Path, function: str | None = None) -> None:
        key = str(Path(path).resolve())
        self._asset = _ASSETS.get(key)
        if self._asset is None:
            self._asset = _ASSETS[key] = _CoreAIAsset(Path(path))
        self._asset.holders += 1
        try:
            self.function = self._asset.function(function or "main")
        except BaseException:
            self.close()
            raise
        self.input_names = list(self.function.desc.input_names)
        self.output_names = list(self.function.desc.output_names)
        self.input_dtypes = [np.dtype(self.function.desc.input_descriptor(n).dtype) for n in self.input_names]

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        from coreai.runtime import NDArray

        feed = {}
        for name, want, x in zip(self.input_names, self.input_dtypes, inputs, strict=True):
            x = np.asarray(x)
            if x.dtype != want and x.dtype.kind in "iu" and want.kind in "iu":
                x = x.astype(want)
            feed[name] = NDArray(np.ascontiguousarray(x))
        out = self._asset.loop.run_until_complete(self.function(feed))
        return [np.asarray(out[n].numpy()) for n in self.output_names]

    def close(self) -> None:
        """Let go of the loaded asset (closed when no runner of it is left)."""
        asset, self._asset = getattr(self, "_asset", None), None
        self.function = None
        if asset is not None:
            asset.release()

    def __enter__(self) -> CoreAIRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


RUNNERS = {"onnx": OnnxRunner, "executorch": ExecuTorchRunner, "coreai": CoreAIRunner}


def load_runner(fmt: str, path: Path, weights: Path | None = None, method: str | None = None):
    """A runner for one artifact; `weights` is an ExecuTorch .ptd (ONNX finds its external data
    itself), `method` the artifact's method in a shared ExecuTorch program or its function in a
    shared Core AI asset."""
    if fmt not in RUNNERS:
        raise InputError(f"no Linux runner for format {fmt!r}; runners: {', '.join(RUNNERS)}")
    if fmt == "coreai":
        return CoreAIRunner(path, method)
    return ExecuTorchRunner(path, weights, method) if fmt == "executorch" else RUNNERS[fmt](path)


def artifact_runner(folder: Path, artifact: dict, threads: int | None = None):
    """The runner of a manifest artifact entry: its file, its weights file and its method
    (`threads`: ONNX Runtime's intra-op threads)."""
    if artifact["format"] == "onnx":
        return OnnxRunner(inside(folder, artifact["path"]), threads=threads)
    weights = inside(folder, artifact["weights"]["path"]) if "weights" in artifact else None
    return load_runner(artifact["format"], inside(folder, artifact["path"]), weights, entry_name(artifact))


def part_runner(folder: Path, fmt: str, part: str, threads: int | None = None):
    """The runner of `part` in format `fmt` of an export folder, as its manifest lays it out (a
    part whose weights are shared lives in its group's file: export/shared.py)."""
    for artifact in load_manifest(folder)["artifacts"]:
        if artifact["format"] == fmt and artifact["part"] == part:
            return artifact_runner(folder, artifact, threads)
    raise InputError(f"{folder} has no {fmt} artifact of {part}; export it with --format {fmt}")
