"""Quiet, clean output: a normal export shows tomobile's own progress, table and result, and nothing
of the libraries' known-harmless noise; real warnings still get through."""

from __future__ import annotations

import io
import logging
import re
import warnings

from tomobile.cli import quiet

# What the libraries printed in a normal `tomobile export` before the filters.
NOISE = ("cpuinfo_utils.cpp", "Failed to load", "is an Enum subclass", "torchvision is not installed",
         "LeafSpec", "has not been tested with coremltools", "Detected no triton", "is not supported",
         "UserWarning", "FutureWarning", "requires gradient")


def test_export_prints_only_its_own_progress_table_and_result(vit_tiny_export_run):
    err = vit_tiny_export_run.stderr
    for needle in NOISE:
        assert needle not in err, f"{needle!r} in stderr:\n{err}"
    segments = [s.strip() for s in re.split(r"[\r\n]", err) if s.strip()]
    assert segments, "no progress bars"
    assert all(s.startswith(("export:", "validate:")) for s in segments), err  # tqdm bars only
    out = vit_tiny_export_run.stdout.splitlines()
    assert out[0].startswith("artifact") and "validation PASSED" in vit_tiny_export_run.stdout
    assert out[-1].startswith("wrote ") and out[-1].endswith("manifest.json")


def test_known_noise_is_dropped_and_other_records_kept(caplog):
    quiet.install()
    with caplog.at_level(logging.WARNING):
        logging.getLogger("torchao").warning("Failed to load /x/torchao/_C_mxfp8.cpython-310-x86_64-linux-gnu.so: no")
        logging.getLogger("torchao").warning("a real torchao problem")
        logging.getLogger("coremltools").warning("Failed to load _MLModelProxy: No module named 'x'")
        logging.getLogger("torch.utils._pytree").warning("something else about pytrees")
        folding = logging.getLogger("onnxscript.optimizer._constant_folding")  # issue 18, item 20 (BERT exports)
        folding.warning("Evaluation failed: %s", "cannot reshape array of size 128 into shape (1,0)")
        folding.warning("Evaluation failed: %s", "some other evaluator error")
    assert [r.getMessage() for r in caplog.records] == ["a real torchao problem", "something else about pytrees",
                                                        "Evaluation failed: some other evaluator error"]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("default")  # show everything, then put the harmless filters in front
        quiet.install()
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use ...", FutureWarning, stacklevel=1)
        warnings.warn("a real deprecation", FutureWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ["a real deprecation"]


def test_native_lines_are_dropped_whole_and_progress_bars_pass_at_once(monkeypatch):
    sink = io.StringIO()
    monkeypatch.setattr("sys.stderr", sink)
    with quiet.native_logs_filtered():
        import sys

        for piece in ["[", "cpuinfo_utils.cpp", ":", "87", "] ", "Failed to open midr file /sys/x", "\n"]:
            sys.stderr.write(piece)  # how ExecuTorch's C++ log arrives through pybind11
        sys.stderr.write("\rexport:  50%")
        assert sink.getvalue() == "\rexport:  50%"  # not held back
        sys.stderr.write("\n[E op_registry.cpp:12] Missing operator: aten::sort\n")
        sys.stderr.write("unfinished")
    assert sink.getvalue() == "\rexport:  50%\n[E op_registry.cpp:12] Missing operator: aten::sort\nunfinished"
