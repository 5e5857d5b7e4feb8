"""Resident memory from /proc (Linux), and the two kernel/libc calls block streaming relies on.

RssAnon is memory only this process holds (heaps, packed weights); RssFile is file pages mapped in
(shared libraries, weights a runtime maps instead of copying), which the kernel can drop and read
back at no cost but I/O. VmHWM is the exact peak of their sum; writing "5" to /proc/PID/clear_refs
resets it, so a peak can be taken per step. On other systems every figure reads 0.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MADV_WILLNEED = 3
MADV_POPULATE_READ = 22  # Linux 5.14+: fault the pages in now
_FIELDS = ("RssAnon", "RssFile", "VmHWM", "VmRSS")


def proc_status(pid: int | str = "self") -> dict[str, int]:
    """RssAnon, RssFile, VmHWM, VmRSS of a process in bytes (0 where /proc does not have them)."""
    values = dict.fromkeys(_FIELDS, 0)
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in values:
                    values[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return values


def reset_peak(pid: int | str = "self") -> None:
    """Reset VmHWM to the current RSS (no-op where not permitted)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        pass


_LIBC = None


def _libc():
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return _LIBC


def malloc_trim() -> None:
    """Give freed heap memory back to the OS: glibc keeps it otherwise, and RssAnon stays up."""
    try:
        _libc().malloc_trim(0)
    except (OSError, AttributeError):
        pass


def populate_mappings(path: Path) -> int:
    """Fault in every mapping of `path` in this process (MADV_POPULATE_READ, else WILLNEED).

    ONNX Runtime maps external weights and touches them only when it computes; populating them in
    the loader thread moves those page faults off the compute path (ctypes drops the GIL). Returns
    the bytes advised."""
    target = str(Path(path).resolve())
    advised = 0
    try:
        with open("/proc/self/maps") as f:
            regions = [line.split() for line in f]
    except OSError:
        return 0
    libc = _libc()
    for fields in regions:
        if len(fields) < 6 or fields[5] != target:
            continue
        start, end = (int(v, 16) for v in fields[0].split("-"))
        if libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), MADV_POPULATE_READ) != 0:
            libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), MADV_WILLNEED)
        advised += end - start
    return advised


@dataclass
class MemoryPeak:
    anon: int = 0  # bytes, highest RssAnon sampled
    file: int = 0  # bytes, highest RssFile sampled
    rss: int = 0  # bytes, VmHWM: the exact peak of RssAnon + RssFile (+ shmem)


class MemoryProbe:
    """Peak RssAnon / RssFile of this process over a window, sampled every `interval` s by a thread
    and at every `sample()` call; the window's exact RSS peak comes from VmHWM.

    A runtime that holds the GIL while it runs (ExecuTorch's bindings) starves the sampling thread;
    the samples taken at each part's load and run boundaries still bound the window."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.peak = MemoryPeak()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> MemoryProbe:
        self._thread = threading.Thread(target=self._loop, name="memory-probe", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        s = proc_status()
        with self._lock:
            self.peak.anon = max(self.peak.anon, s["RssAnon"])
            self.peak.file = max(self.peak.file, s["RssFile"])

    def start_window(self) -> None:
        """Begin a new window (one denoising step): reset VmHWM and the sampled peaks."""
        reset_peak()
        s = proc_status()
        with self._lock:
            self.peak = MemoryPeak(s["RssAnon"], s["RssFile"], 0)

    def end_window(self) -> MemoryPeak:
        self.sample()
        with self._lock:
            peak = MemoryPeak(self.peak.anon, self.peak.file, proc_status()["VmHWM"])
        return peak
