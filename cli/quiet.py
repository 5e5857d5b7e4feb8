"""Quiet, clean output: silence what other libraries print that is known to be harmless, keep the rest.

A `tomobile` run shows its own progress bars, tables and results. The libraries under it print
lines a user cannot tell from real problems; each one silenced here was seen in a normal run
(torch 2.13, executorch 1.5.1, coremltools 9.0, torchao 0.18) and is harmless on CPU machines:

- torchao: "Failed to load .../_C_mxfp8...so" (its CUDA kernels, on a machine without CUDA) and
  "Detected no triton" (a GPU compiler);
- diffusers: "Unable to import `torchao` Tensor objects. This may affect loading checkpoints
  serialized with `torchao`" (on import, with torchao 0.18: tomobile loads no torchao checkpoint);
- torch's pytree: "<enum ...> is an Enum subclass and is now natively supported ..." (torchao
  registers its enums the old way);
- the ONNX exporter: "torchvision is not installed. Skipping torchvision::roi_align";
- onnxscript's constant folding: "Evaluation failed: cannot reshape array ..." (BERT exports: the
  reference evaluator cannot fold one shape computation, so the node is kept unfolded; the graph's
  numbers are validated against eager as always);
- coremltools: "Failed to load _MLModelProxy ..." (the macOS-only runtime), "Torch version ...
  has not been tested with coremltools" and "scikit-learn version ... is not supported" (its
  scikit-learn converter, which tomobile does not use);
- torch: FutureWarning "`isinstance(treespec, LeafSpec)` is deprecated" (raised by torch itself);
- ExecuTorch's XNNPACK backend, from C++ through pybind11 to sys.stderr: "[cpuinfo_utils.cpp:87]
  Failed to open midr file ..." when the first program loads.

Everything else (other warnings, log records at WARNING and above, native errors such as a missing
ExecuTorch kernel) still reaches stderr. Each filter matches by logger name and message, never a
whole library.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import warnings
from collections.abc import Iterator

# logger name -> messages from it that are harmless
HARMLESS_LOGS: dict[str, tuple[str, ...]] = {
    "torchao": (r"Failed to load .*torchao/_C.*\.so",),
    "torchao.kernel.intmm": (r"Detected no triton",),
    "diffusers.quantizers.torchao.torchao_quantizer": (r"Unable to import `torchao` Tensor objects",),
    "torch.utils._pytree": (r"is an Enum subclass and is now natively supported",),
    "torch.onnx._internal.exporter._registration": (r"torchvision is not installed",),
    "onnxscript.optimizer._constant_folding": (r"^Evaluation failed: cannot reshape array",),
    "coremltools": (r"Failed to load _ML\w*Proxy", r"has not been tested with coremltools",
                    r"scikit-learn version \S+ is not supported"),
}
# (category, message) of Python warnings that are harmless
HARMLESS_WARNINGS: tuple[tuple[type[Warning], str], ...] = (
    (FutureWarning, r"`isinstance\(treespec, LeafSpec\)` is deprecated"),
)
# lines that native code prints (through sys.stderr)
HARMLESS_NATIVE: tuple[str, ...] = (r"\[cpuinfo_utils\.cpp:\d+\] ",)


class _DropMessages(logging.Filter):
    """Drops records whose message matches one of the patterns."""

    def __init__(self, patterns: tuple[str, ...]) -> None:
        super().__init__()
        self.pattern = re.compile("|".join(patterns))

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.pattern.search(record.getMessage())


def install() -> None:
    """Offline Hugging Face, plain log format, and the filters above. Idempotent."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name, patterns in HARMLESS_LOGS.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessages) for f in logger.filters):
            logger.addFilter(_DropMessages(patterns))
    for category, message in HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    import transformers  # deferred: heavy, and only a command run needs it quieted

    # transformers' own warnings stay off: its weight-loading report is read by the model loader
    # (graphs/models/hf_folder.py), which refuses or reports, in one line, what would matter.
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


class _FilteredStream:
    """A text stream that drops whole lines matching `pattern` and passes the rest on.

    Text is passed on a line at a time (C++ loggers write a line in pieces through pybind11:
    "[", "cpuinfo_utils.cpp", ":", "87", "] ", ...), except progress-bar updates ('\r', no newline),
    which go through at once so bars never lag."""

    def __init__(self, stream, pattern: re.Pattern[str]) -> None:
        self._stream = stream
        self._pattern = pattern
        self._held = ""

    def write(self, text: str) -> int:
        if "\r" in text and "\n" not in text:
            self.release()
            return self._stream.write(text)
        *lines, self._held = (self._held + text).split("\n")
        for line in lines:
            if not self._pattern.match(line):
                self._stream.write(line + "\n")
        return len(text)

    def release(self) -> None:
        """Pass on a held unfinished line, unless it is one to drop."""
        if self._held and not self._pattern.match(self._held):
            self._stream.write(self._held)
        self._held = ""

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


@contextlib.contextmanager
def native_logs_filtered(patterns: tuple[str, ...] = HARMLESS_NATIVE) -> Iterator[None]:
    """Drop the known-harmless lines that native code prints through Python's sys.stderr.

    ExecuTorch's runtime sends its C++ log (the XNNPACK cpuinfo lines) to `sys.stderr` through
    pybind11, so the filter sits on that stream: the same place as tqdm's bars, which pass untouched.
    """
    old = sys.stderr
    sys.stderr = filtered = _FilteredStream(old, re.compile("|".join(patterns)))
    try:
        yield
    finally:
        filtered.release()
        sys.stderr = old
