"""ONNX Runtime sessions that hold one copy of the weights their graphs share (docs/shared_weights.md).

By default every ONNX Runtime session prepacks its MatMul/Gemm weights (MLAS's packed layout) into
its own memory: two variants of one model (a denoiser and its TDTM graph) hold the weights twice.
ONNX Runtime can share prepacked weights across sessions: initializers handed to every session
(`AddInitializer`) plus one `OrtPrepackedWeightsContainer` passed at session creation
(`CreateSessionWithPrepackedWeightsContainer`); the second session finds the packed buffer the first
one made (keyed by op type and the packed bytes' hash) and keeps no copy of its own. The kernels,
the packing and so the outputs are those of a default session, bit for bit.

The Python package exposes no container (its pybind module has no such class or option), but the
wheel ships the C library (`onnxruntime/capi/libonnxruntime.so.<version>`), whose `OrtGetApiBase`
returns the C API's table of function pointers. This module calls the few entries it needs
through ctypes, at their index in `struct OrtApi` (onnxruntime_c_api.h; the table only grows at its
end, so the indices hold for every version that has the container, API 8 and later). The shared
initializers are `OrtValue`s over one read-only memory map of the weights file the graphs share
(`<group>.onnx.data`); after the sessions packed them, `drop_resident()` lets the kernel drop the
mapped pages (what a run still reads, biases and norms, comes back from the page cache).

Used by `generate --runtime onnxruntime` (runtime/video.py) wherever the export folder holds
variants on one weights file (TOMOBILE_ORT_SHARED_WEIGHTS=0 turns it off: each session packs its
own copy), and by scripts/shared_weights_bench.py.
"""

from __future__ import annotations

import ctypes
import mmap
from pathlib import Path

import numpy as np

# Tensors smaller than this stay the session's own (ORT loads them from the file as usual).
MIN_SHARED_BYTES = 64 * 1024
API_VERSION = 13  # the table's first 170 entries, unchanged in every later version

# Indices in struct OrtApi (onnxruntime_c_api.h, counted from CreateStatus = 0).
_INDEX = {
    "GetErrorMessage": 2, "CreateEnv": 3, "Run": 9, "CreateSessionOptions": 10, "SetIntraOpNumThreads": 24,
    "SetInterOpNumThreads": 25, "SessionGetInputCount": 30, "SessionGetOutputCount": 31,
    "SessionGetInputName": 36, "SessionGetOutputName": 37, "CreateTensorWithDataAsOrtValue": 49,
    "GetTensorMutableData": 51, "GetTensorElementType": 60, "GetDimensionsCount": 61, "GetDimensions": 62,
    "GetTensorTypeAndShape": 65, "CreateCpuMemoryInfo": 69, "AllocatorFree": 76,
    "GetAllocatorWithDefaultOptions": 78, "ReleaseEnv": 92, "ReleaseStatus": 93, "ReleaseMemoryInfo": 94,
    "ReleaseSession": 95, "ReleaseValue": 96, "ReleaseTensorTypeAndShapeInfo": 99, "ReleaseSessionOptions": 100,
    "AddSessionConfigEntry": 130, "AddInitializer": 150, "CreatePrepackedWeightsContainer": 166,
    "ReleasePrepackedWeightsContainer": 167, "CreateSessionWithPrepackedWeightsContainer": 168,
}
P, S = ctypes.c_void_p, ctypes.c_size_t
# Entries returning P return an OrtStatus* (NULL: success); None: void.
_SIGNATURES = {
    "GetErrorMessage": (ctypes.c_char_p, P),
    "CreateEnv": (P, ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(P)),
    "Run": (P, P, P, ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(P), S, ctypes.POINTER(ctypes.c_char_p), S,
            ctypes.POINTER(P)),
    "CreateSessionOptions": (P, ctypes.POINTER(P)),
    "SetIntraOpNumThreads": (P, P, ctypes.c_int),
    "SetInterOpNumThreads": (P, P, ctypes.c_int),
    "SessionGetInputCount": (P, P, ctypes.POINTER(S)),
    "SessionGetOutputCount": (P, P, ctypes.POINTER(S)),
    "SessionGetInputName": (P, P, S, P, ctypes.POINTER(P)),
    "SessionGetOutputName": (P, P, S, P, ctypes.POINTER(P)),
    "CreateTensorWithDataAsOrtValue": (P, P, P, S, ctypes.POINTER(ctypes.c_int64), S, ctypes.c_int, ctypes.POINTER(P)),
    "GetTensorMutableData": (P, P, ctypes.POINTER(P)),
    "GetTensorElementType": (P, P, ctypes.POINTER(ctypes.c_int)),
    "GetDimensionsCount": (P, P, ctypes.POINTER(S)),
    "GetDimensions": (P, P, ctypes.POINTER(ctypes.c_int64), S),
    "GetTensorTypeAndShape": (P, P, ctypes.POINTER(P)),
    "CreateCpuMemoryInfo": (P, ctypes.c_int, ctypes.c_int, ctypes.POINTER(P)),
    "AllocatorFree": (P, P, P),
    "GetAllocatorWithDefaultOptions": (P, ctypes.POINTER(P)),
    "ReleaseEnv": (None, P), "ReleaseStatus": (None, P), "ReleaseMemoryInfo": (None, P),
    "ReleaseSession": (None, P), "ReleaseValue": (None, P), "ReleaseTensorTypeAndShapeInfo": (None, P),
    "ReleaseSessionOptions": (None, P), "ReleasePrepackedWeightsContainer": (None, P),
    "AddSessionConfigEntry": (P, P, ctypes.c_char_p, ctypes.c_char_p),
    "AddInitializer": (P, P, ctypes.c_char_p, P),
    "CreatePrepackedWeightsContainer": (P, ctypes.POINTER(P)),
    "CreateSessionWithPrepackedWeightsContainer": (P, P, ctypes.c_char_p, P, P, ctypes.POINTER(P)),
}
# ONNXTensorElementDataType <-> numpy
_DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 5: np.int16, 6: np.int32, 7: np.int64, 9: np.bool_,
           10: np.float16, 11: np.float64}
_CODES = {np.dtype(v): k for k, v in _DTYPES.items()}
_ARENA, _MEM_DEFAULT = 1, 0  # OrtArenaAllocator, OrtMemTypeDefault


class OrtCapiError(RuntimeError):
    """The C library could not be loaded or a call failed (the message is ONNX Runtime's)."""


def library_path() -> Path:
    """The C library inside the onnxruntime wheel (the pybind module links its own copy)."""
    import onnxruntime

    capi = Path(onnxruntime.__file__).parent / "capi"
    found = sorted(capi.glob("libonnxruntime.so*")) + sorted(capi.glob("libonnxruntime*.dylib"))
    if not found:
        raise OrtCapiError(f"no libonnxruntime shared library in {capi}")
    return found[0]


class _Api:
    """The C API table: `api.Name(args)` calls entry Name, raising OrtCapiError on a status."""

    _instance: _Api | None = None

    def __init__(self) -> None:
        lib = ctypes.CDLL(str(library_path()))
        lib.OrtGetApiBase.restype = P
        base = ctypes.cast(lib.OrtGetApiBase(), ctypes.POINTER(P))  # struct {GetApi, GetVersionString}
        get_api = ctypes.CFUNCTYPE(P, ctypes.c_uint32)(base[0])
        table = get_api(API_VERSION)
        if not table:
            raise OrtCapiError(f"{library_path().name} does not offer C API version {API_VERSION}")
        self.version = ctypes.CFUNCTYPE(ctypes.c_char_p)(base[1])().decode()
        entries = ctypes.cast(table, ctypes.POINTER(P))
        self._fns = {name: ctypes.CFUNCTYPE(*_SIGNATURES[name])(entries[i]) for name, i in _INDEX.items()}
        self._lib = lib  # keeps the library loaded

    @classmethod
    def get(cls) -> _Api:
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def __getattr__(self, name: str):
        fn, returns_status = self._fns[name], _SIGNATURES[name][0] is P
        if not returns_status:
            return fn

        def call(*args):
            status = fn(*args)
            if status:
                message = self._fns["GetErrorMessage"](status).decode(errors="replace")
                self._fns["ReleaseStatus"](status)
                raise OrtCapiError(f"onnxruntime {name}: {message}")
        return call


def external_initializers(graph: Path) -> dict[str, tuple[str, int, int, np.dtype, tuple[int, ...]]]:
    """name -> (data file, offset, length, dtype, shape) of the graph's initializers kept in external
    data, read from the graph without loading the data."""
    import onnx  # deferred: only this reader needs the protobuf schema
    from onnx.external_data_helper import ExternalDataInfo

    out = {}
    for t in onnx.load(str(graph), load_external_data=False).graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            info = ExternalDataInfo(t)
            dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.data_type))
            length = info.length or int(np.prod(t.dims, dtype=np.int64)) * dtype.itemsize
            out[t.name] = (info.location, info.offset or 0, length, dtype, tuple(int(d) for d in t.dims))
    return out


class SharedWeightSessions:
    """Sessions over graphs that share one external weights file, with one prepacked copy of them.

    `session(graph)` opens a graph (its initializers in `data`, the file the manifest names);
    every session gets the same `OrtValue`s over one memory map of `data` and the same prepacked
    weights container. Keep this object alive while its sessions run."""

    def __init__(self, data: Path, threads: int | None = None, spinning: bool = False,
                 min_bytes: int = MIN_SHARED_BYTES) -> None:
        self.api = api = _Api.get()
        self.min_bytes = min_bytes
        self.data, self.threads, self.spinning = Path(data), threads, spinning
        self._file = open(self.data, "rb")  # noqa: SIM115 (the map lives as long as the sessions)
        self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
        self._env, self._container, self._meminfo = P(), P(), P()
        api.CreateEnv(3, b"tomobile", ctypes.byref(self._env))  # ORT_LOGGING_LEVEL_ERROR
        api.CreatePrepackedWeightsContainer(ctypes.byref(self._container))
        api.CreateCpuMemoryInfo(_ARENA, _MEM_DEFAULT, ctypes.byref(self._meminfo))
        self._values: dict[tuple, P] = {}
        self._arrays: dict[tuple, np.ndarray] = {}
        self._sessions: list[P] = []

    def _value(self, offset: int, length: int, dtype: np.dtype, shape: tuple[int, ...]) -> P:
        """The OrtValue over these bytes of the map, one per (offset, length, dtype, shape): graphs
        name their tensors independently (two graphs' `val_45` may be different constants), so
        the place in the file, not the name, says which tensor it is."""
        key = (offset, length, dtype.str, shape)
        if key not in self._values:
            array = np.frombuffer(self._map, dtype=dtype, count=length // dtype.itemsize, offset=offset).reshape(shape)
            self._arrays[key] = array
            self._values[key] = self._tensor(array)
        return self._values[key]

    def _tensor(self, array: np.ndarray) -> P:
        """An OrtValue over `array`'s memory (no copy; `array` must outlive it)."""
        if array.dtype not in _CODES:
            raise OrtCapiError(f"no ONNX element type for numpy {array.dtype}")
        dims = (ctypes.c_int64 * max(array.ndim, 1))(*array.shape)
        value = P()
        self.api.CreateTensorWithDataAsOrtValue(self._meminfo, array.ctypes.data, array.nbytes, dims, array.ndim,
                                                _CODES[array.dtype], ctypes.byref(value))
        return value

    def session(self, graph: Path) -> SharedSession:
        api, opts = self.api, P()
        api.CreateSessionOptions(ctypes.byref(opts))
        try:
            if self.threads:
                api.SetIntraOpNumThreads(opts, self.threads)
                api.SetInterOpNumThreads(opts, 1)
            if not self.spinning:
                api.AddSessionConfigEntry(opts, b"session.intra_op.allow_spinning", b"0")
            for name, (location, offset, length, dtype, shape) in external_initializers(graph).items():
                if length < self.min_bytes:
                    continue  # small tables (rope, norms): the session reads its own, as ORT would
                if (Path(graph).parent / location).resolve() != self.data.resolve():
                    raise OrtCapiError(f"{graph} keeps {name} in {location}, not in {self.data.name}")
                api.AddInitializer(opts, name.encode(), self._value(offset, length, dtype, shape))
            handle = P()
            api.CreateSessionWithPrepackedWeightsContainer(self._env, str(graph).encode(), opts, self._container,
                                                           ctypes.byref(handle))
        finally:
            api.ReleaseSessionOptions(opts)
        self._sessions.append(handle)
        return SharedSession(self, handle)

    def drop_resident(self) -> None:
        """Let the kernel drop the mapped weight pages: the sessions hold their packed copy; the
        pages a run still reads (unpacked initializers) come back from the page cache."""
        if hasattr(mmap, "MADV_DONTNEED"):
            self._map.madvise(mmap.MADV_DONTNEED)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 (interpreter shutdown: ctypes may already be gone)
            pass

    def close(self) -> None:
        """Release the sessions, the shared values and the map (no session of this owner may run after)."""
        if self._map.closed:
            return
        api = self.api
        for handle in self._sessions:
            api.ReleaseSession(handle)
        for value in self._values.values():
            api.ReleaseValue(value)
        self._sessions, self._values, self._arrays = [], {}, {}
        if self._container:
            api.ReleasePrepackedWeightsContainer(self._container)
            api.ReleaseMemoryInfo(self._meminfo)
            api.ReleaseEnv(self._env)
            self._container = P()
        self._map.close()
        self._file.close()


class SharedSession:
    """One graph's session: `run(inputs)` takes and returns numpy arrays in the graph's order."""

    def __init__(self, owner: SharedWeightSessions, handle: P) -> None:
        self.owner, self.handle = owner, handle
        self.input_names = self._names("Input")
        self.output_names = self._names("Output")

    def _names(self, side: str) -> list[str]:
        api, count, alloc = self.owner.api, S(), P()
        getattr(api, f"SessionGet{side}Count")(self.handle, ctypes.byref(count))
        api.GetAllocatorWithDefaultOptions(ctypes.byref(alloc))
        names = []
        for i in range(count.value):
            text = P()
            getattr(api, f"SessionGet{side}Name")(self.handle, i, alloc, ctypes.byref(text))
            names.append(ctypes.string_at(text).decode())
            api.AllocatorFree(alloc, text)
        return names

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        api = self.owner.api
        if len(inputs) != len(self.input_names):
            raise OrtCapiError(f"{len(inputs)} inputs, the graph takes {len(self.input_names)}")
        arrays = [np.ascontiguousarray(a) for a in inputs]
        values = [self.owner._tensor(a) for a in arrays]
        outputs = (P * len(self.output_names))()
        try:
            api.Run(self.handle, None, (ctypes.c_char_p * len(arrays))(*[n.encode() for n in self.input_names]),
                    (P * len(values))(*values), len(values),
                    (ctypes.c_char_p * len(outputs))(*[n.encode() for n in self.output_names]), len(outputs),
                    outputs)
            return [self._array(P(v)) for v in outputs]
        finally:
            for v in values:
                api.ReleaseValue(v)
            for v in outputs:
                if v:
                    api.ReleaseValue(P(v))

    def _array(self, value: P) -> np.ndarray:
        api, info, code, rank, data = self.owner.api, P(), ctypes.c_int(), S(), P()
        api.GetTensorTypeAndShape(value, ctypes.byref(info))
        try:
            api.GetTensorElementType(info, ctypes.byref(code))
            api.GetDimensionsCount(info, ctypes.byref(rank))
            dims = (ctypes.c_int64 * max(rank.value, 1))()
            api.GetDimensions(info, dims, rank.value)
        finally:
            api.ReleaseTensorTypeAndShapeInfo(info)
        if code.value not in _DTYPES:
            raise OrtCapiError(f"output of ONNX element type {code.value}: not supported here")
        dtype, shape = np.dtype(_DTYPES[code.value]), tuple(dims[: rank.value])
        api.GetTensorMutableData(value, ctypes.byref(data))
        count = int(np.prod(shape, dtype=np.int64))
        if count == 0:
            return np.zeros(shape, dtype)
        raw = ctypes.string_at(data.value, count * dtype.itemsize)
        return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
