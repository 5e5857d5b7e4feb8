"""The private APIs the runners call, each fenced by the version it was checked against.

Where a runtime's public API cannot do a thing (ONNX Runtime's shared prepacked weights, XNNPACK's
weight cache, the ExecuTorch bindings' thread count, Core AI's compile cache, Python's exit
handlers before a fast exit), a runner calls a private one. Each such call sits behind its
`Fence`: the call is made only where the installed version is the one it was checked on (the
pinned one); anywhere else the runner takes the public path named in `fallback`, and says so once
in the log. tests/runtime/test_fences.py fails when an installed version moves off a fence, so a
version bump is noticed and the private call checked again, not silently degraded.
"""

from __future__ import annotations

import logging
import platform
from dataclasses import dataclass
from importlib import metadata

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fence:
    """A private call (`what`) that depends on `package` at version `verified` (a version prefix by
    release segments: '1.32' holds for 1.32.0 and 1.32.1, not 1.320)."""

    what: str
    package: str  # a distribution name, or "python" for the interpreter
    verified: str
    fallback: str  # the public path taken elsewhere

    def installed(self) -> str | None:
        """The installed version of `package`, or None when it is not installed."""
        if self.package == "python":
            return platform.python_version()
        try:
            return metadata.version(self.package)
        except metadata.PackageNotFoundError:
            return None

    def holds(self) -> bool:
        """Whether the installed version is the verified one (then the private call is made)."""
        version = self.installed()
        return version is not None and (version == self.verified or version.startswith(self.verified + "."))

    def open(self) -> bool:
        """`holds()`, logging the fallback the first time it does not."""
        if self.holds():
            return True
        if self not in _WARNED:
            _WARNED.add(self)
            log.info("%s: checked on %s %s, installed %s; %s", self.what, self.package, self.verified,
                     self.installed() or "none", self.fallback)
        return False


_WARNED: set[Fence] = set()

ORT_PREPACKED_WEIGHTS = Fence(
    "ONNX Runtime's C API table called through ctypes at fixed indices (shared prepacked weights)",
    "onnxruntime", "1.32", "each session packs its own copy of the weights (InferenceSession)")
XNNPACK_WEIGHT_CACHE = Fence(
    "executorch::runtime::set_option called through its mangled C++ symbol (XNNPACK's weight cache)",
    "executorch", "1.5.1", "the weight cache stays off: each method packs its own weights")
EXECUTORCH_THREADS = Fence(
    "the ExecuTorch bindings' _unsafe_reset_threadpool (the runtime's thread count)",
    "executorch", "1.5.1", "the thread pool keeps the size it has (a warning names it)")
COREAI_COMPILE_CACHE = Fence(
    "coreai-core's AIModelAsset._write_odix (one compiled form per asset, kept for the process)",
    "coreai-core", "1.0.0b3", "every load compiles the asset again (AIModelAsset.executable())")
EXIT_HANDLERS = Fence(
    "Python's atexit._run_exitfuncs before os._exit (ending a process that loaded Core AI's runtime)",
    "python", "3.11", "sys.exit: the interpreter's own teardown")
FENCES = (ORT_PREPACKED_WEIGHTS, XNNPACK_WEIGHT_CACHE, EXECUTORCH_THREADS, COREAI_COMPILE_CACHE, EXIT_HANDLERS)
