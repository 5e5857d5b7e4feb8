"""The native engine (runtime/native/, `tomobile-native`): where its binary is, how it is built.

The C++ sources link ExecuTorch's C++ runtime from the executorch wheel (headers, shared
libraries and a cmake config under site-packages/executorch); `make native` builds them with
Debian's cmake and g++ into runtime/native/build. `build()` does the same from Python (the tests
and `tomobile bench --native` call it; a built binary that is up to date costs a second).
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

from ..graphs.errors import TomobileError

NATIVE_DIR = Path(__file__).resolve().parent / "native"
BUILD_DIR = NATIVE_DIR / "build"
BINARY = BUILD_DIR / "tomobile-native"


class NativeBuildError(TomobileError, RuntimeError):
    """The engine cannot be built here: a missing tool or library, or a compile error."""


def executorch_root() -> Path:
    """site-packages/executorch of this interpreter (headers in include/, libraries in lib/)."""
    spec = importlib.util.find_spec("executorch")
    if spec is None or not spec.submodule_search_locations:
        raise NativeBuildError("the executorch package is not installed; `make install` installs it")
    return Path(list(spec.submodule_search_locations)[0])


def build(jobs: int = 2) -> Path:
    """Configure (once) and build `tomobile-native`; returns the binary."""
    for tool in ("cmake", "g++"):
        if shutil.which(tool) is None:
            raise NativeBuildError(f"{tool} is not installed; `make native` installs the Debian packages it needs")
    steps = [["cmake", "-S", str(NATIVE_DIR), "-B", str(BUILD_DIR), f"-DEXECUTORCH_ROOT={executorch_root()}"],
             ["cmake", "--build", str(BUILD_DIR), f"-j{jobs}"]]
    for cmd in steps:
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-20:]
            raise NativeBuildError(f"{' '.join(cmd[:2])} failed:\n" + "\n".join(tail))
    return BINARY
