"""XNNPACK's weight cache for the ExecuTorch runtime in this process (docs/shared_weights.md).

XNNPACK packs a method's weights when the method is loaded. Without the cache every method packs
its own copy: the two methods of one shared `.pte` (a denoiser and its TDTM variant) held the
weights twice (1.92x the memory of one). With the backend option `weight_cache_enabled`, packed
weights are looked up by the name of their unpacked data, which the XNNPACK serializer sets to the
sha256 of the tensor's bytes: a method (or another program) whose weights are the same bytes gets
the packed copy that is already there, and an entry is freed when its last method goes.

The Python bindings do not expose backend options, but they load the wheel's `libexecutorch.so`,
whose C++ `executorch::runtime::set_option(const char*, Span<BackendOption>)` sets them for the
registered backend. This module calls it through ctypes with the struct laid out as the wheel's
`runtime/backend/options.h` declares it (a 64-byte key, then `std::variant<bool, int,
std::array<char, 256>>`: 256 bytes of storage and its index byte; 324 bytes in all), and reads
the option back with `get_option`: when anything differs (another ExecuTorch build), the cache
stays off and every method packs its own weights, as before. The symbols are called only where
the installed executorch is the version whose layout was checked (fences.py XNNPACK_WEIGHT_CACHE).

`TOMOBILE_XNNPACK_WEIGHT_CACHE=0` keeps it off (for measuring the difference).
"""

from __future__ import annotations

import ctypes
import logging
import os
from pathlib import Path

from .fences import XNNPACK_WEIGHT_CACHE

log = logging.getLogger(__name__)

BACKEND = b"XnnpackBackend"
WEIGHT_CACHE_KEY = b"weight_cache_enabled"
_SET = "_ZN10executorch7runtime10set_optionEPKcNS0_4SpanINS0_13BackendOptionEEE"
_GET = "_ZN10executorch7runtime10get_optionEPKcNS0_4SpanINS0_13BackendOptionEEE"
_BOOL_INDEX = 0  # the variant's first alternative


class _BackendOption(ctypes.Structure):
    _fields_ = [("key", ctypes.c_char * 64), ("value", ctypes.c_ubyte * 256), ("index", ctypes.c_ubyte),
                ("_pad", ctypes.c_ubyte * 3)]


class _Span(ctypes.Structure):
    _fields_ = [("data", ctypes.POINTER(_BackendOption)), ("size", ctypes.c_size_t)]


_STATE: dict[str, bool] = {}


def _library():
    """The libexecutorch.so the Python bindings loaded (the same handle: dlopen counts references)."""
    from executorch.extension.pybindings import _C  # loads libexecutorch.so and registers XNNPACK

    lib = ctypes.CDLL(str(Path(_C.__file__).resolve().parent.parent.parent / "lib" / "libexecutorch.so"))
    set_option, get_option = getattr(lib, _SET), getattr(lib, _GET)
    for f in (set_option, get_option):
        f.argtypes, f.restype = [ctypes.c_char_p, _Span], ctypes.c_uint32
    return set_option, get_option


def _option(value: bool | None) -> _BackendOption:
    o = _BackendOption()
    o.key = WEIGHT_CACHE_KEY
    o.index = _BOOL_INDEX
    if value is not None:
        o.value[0] = int(value)
    return o


def weight_cache_enabled() -> bool:
    """Whether XNNPACK's weight cache is on in this process (as the backend reports it; False
    where the option cannot be read: fenced off, or another build)."""
    if not XNNPACK_WEIGHT_CACHE.open():
        return False
    try:
        _, get_option = _library()
        o = _option(None)
        if get_option(BACKEND, _Span(ctypes.pointer(o), 1)) != 0 or o.index != _BOOL_INDEX:
            return False
        return bool(o.value[0])
    except (OSError, AttributeError, ImportError):
        return False


def set_weight_cache(enabled: bool) -> bool:
    """Turn XNNPACK's weight cache on or off for methods loaded from now on; True when the backend
    then reports `enabled` (False: the option could not be set, methods pack their own weights)."""
    if not XNNPACK_WEIGHT_CACHE.open():
        return False
    try:
        set_option, _ = _library()
        o = _option(enabled)
        err = set_option(BACKEND, _Span(ctypes.pointer(o), 1))
    except (OSError, AttributeError, ImportError) as e:
        log.debug("XNNPACK weight cache not set: %s", e)
        return False
    if err != 0:
        log.debug("XNNPACK weight cache not set: error 0x%x", err)
        return False
    return weight_cache_enabled() == enabled


def ensure_weight_cache() -> bool:
    """Turn the cache on once per process unless TOMOBILE_XNNPACK_WEIGHT_CACHE=0; whether it is on."""
    if "on" not in _STATE:
        wanted = os.environ.get("TOMOBILE_XNNPACK_WEIGHT_CACHE", "1") != "0"
        _STATE["on"] = set_weight_cache(True) if wanted else False
    return _STATE["on"]
