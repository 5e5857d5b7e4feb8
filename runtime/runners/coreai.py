"""Core AI's Linux CPU runtime (coreai-core): the runner, the loaded assets it shares, and how a
process that loaded the runtime ends. Two private calls are fenced (fences.py): the compile cache
(`AIModelAsset._write_odix`) and Python's exit handlers before a fast exit."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import numpy as np

from ..manifest import ArtifactError
from .fences import COREAI_COMPILE_CACHE, EXIT_HANDLERS

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
    if not sys.platform.startswith("linux") or not COREAI_COMPILE_CACHE.open() or not hasattr(asset, "_write_odix"):
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
            raise ArtifactError(f"{self.path} has no function {name!r}; export the folder again")
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
    if "coreai.runtime" not in sys.modules or not EXIT_HANDLERS.open():
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

