"""Instructions per call, counted by valgrind's callgrind: a figure that other jobs on the machine
cannot move (wall time on a shared machine can double between runs; the count of the same binary on
the same inputs repeats).

A count runs in a child process under `valgrind --tool=callgrind --instr-atstart=no`: loading,
imports and a warm-up call run uninstrumented (valgrind's plain, cheaper translation), and only the
N counted calls run between two client requests (`counted()`: libtomobile-counting.so, built with
the native engine, issues them for Python; the native engine's `time` issues them itself around
its runs). callgrind dumps the counters at the second request; `parse_calls` reads that dump.

What it costs: valgrind runs a program 50-100x slower, and far slower where the code is fused
multiply-adds (valgrind 3.19 emulates FMA through helper calls: on this machine a 197 x 256 x 1024
matmul took 2000x its native time, about 55 ns per multiply-add). So count small graphs (vit-tiny,
sd-unet-tiny at its own size), not ViT-B/16 or SD-1.5, and few calls: the count repeats, one call
is enough. What is counted is the code valgrind's CPU model makes the libraries choose: it
reports AVX2 and FMA but not AVX-512, so ONNX Runtime's and XNNPACK's AVX2 kernels are counted
even on a machine whose native runs use AVX-512 ones.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..graphs.errors import TomobileError
from .native_engine import BUILD_DIR, build

log = logging.getLogger(__name__)

COUNTING_LIBRARY = BUILD_DIR / "libtomobile-counting.so"
MARK = "tomobile-calls"  # the dump's trigger name, in counting.cpp and the native engine alike


class CountError(TomobileError, RuntimeError):
    """Instructions cannot be counted here: no valgrind, no counting library, or the child failed."""


def counting_library() -> Path:
    """libtomobile-counting.so, built with the native engine if it is not there yet."""
    if not COUNTING_LIBRARY.is_file():
        build()
    if not COUNTING_LIBRARY.is_file():
        raise CountError(f"{COUNTING_LIBRARY} was not built: valgrind's headers (valgrind/callgrind.h) are "
                         "missing; `make native` installs Debian's valgrind")
    return COUNTING_LIBRARY


@contextlib.contextmanager
def counted() -> Iterator[None]:
    """Count what runs inside this block when the process runs under callgrind (no-op otherwise)."""
    lib = ctypes.CDLL(str(counting_library()))
    lib.tomobile_count_start()
    try:
        yield
    finally:
        lib.tomobile_count_stop()


def callgrind_command(out: Path) -> list[str]:
    if shutil.which("valgrind") is None:
        raise CountError("valgrind is not installed; `make native` installs it (Debian package valgrind)")
    return ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}.%p"]


def count_instructions(command: list[str], calls: int, timeout: float | None = None) -> float:
    """Instructions per call of `command`, a program that brackets `calls` calls with `counted()`
    (or the native engine's own requests), run under callgrind."""
    with tempfile.TemporaryDirectory(prefix="tomobile-callgrind-") as tmp:
        out = Path(tmp) / "callgrind.out"
        proc = subprocess.run(callgrind_command(out) + command, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
            raise CountError(f"counting {' '.join(command[:4])} ... failed (exit {proc.returncode}):\n{tail}")
        dumps = [p.read_text(errors="replace") for p in sorted(Path(tmp).glob("callgrind.out.*"))]
    total = parse_calls(dumps)
    log.info("%s: %d instructions in %d calls", " ".join(command[:4]), total, calls)
    return total / calls


def parse_calls(dumps: list[str]) -> int:
    """The instruction count of the dump callgrind wrote at the `MARK` request ("desc: Trigger:
    Client Request: tomobile-calls", then "summary: N" or, without a summary, "totals: N")."""
    found = []
    for text in dumps:
        for part in re.split(r"^(?=part: )", text, flags=re.M):
            if re.search(rf"^desc: Trigger: Client Request: {re.escape(MARK)}\s*$", part, flags=re.M):
                match = re.search(r"^(?:summary|totals): (\d+)", part, flags=re.M)
                if match:
                    found.append(int(match.group(1)))
    if len(found) != 1:
        raise CountError(f"expected one callgrind dump marked {MARK!r}, found {len(found)}: the child did not "
                         "bracket its calls, or ran more than one counted block")
    return found[0]
