"""Validation report: thresholds, PSNR, table, and Core ML numerics never shown as passed on Linux."""

from __future__ import annotations

import math
import platform
from pathlib import Path

import numpy as np
import pytest

from tomobile.runtime.report import (
    FAIL,
    FP32_MAX_ABS_ERROR,
    NEEDS_MACOS,
    PASS,
    OutputCheck,
    ValidationReport,
    compare,
    format_table,
    psnr,
)
from tomobile.runtime.validate import validate_dir


def test_compare_applies_named_thresholds():
    ref = np.linspace(-1, 1, 100, dtype=np.float32)
    assert compare(ref, ref + FP32_MAX_ABS_ERROR / 2, "fp32")[2] == PASS
    assert compare(ref, ref + FP32_MAX_ABS_ERROR * 2, "fp32")[2] == FAIL
    assert compare(ref, ref + 1e-3, "fp16")[2] == PASS  # ~60 dB
    assert compare(ref, ref + 0.05, "fp16")[2] == FAIL  # 26 dB < 35
    assert compare(ref, ref.reshape(10, 10), "fp32")[2] == FAIL
    assert compare(ref, np.full_like(ref, np.nan), "fp32")[2] == FAIL


def test_psnr_values():
    ref = np.array([1.0, -1.0, 0.5, 0.0])
    assert math.isinf(psnr(ref, ref))
    assert psnr(ref, ref + 0.1) == pytest.approx(20.0)


def test_report_with_only_needs_macos_is_not_a_pass_table():
    report = ValidationReport("x", [OutputCheck("m.mlpackage", "spec", "y", (1,), None, None, NEEDS_MACOS)])
    table = format_table(report)
    assert "needs macOS" in table and "1 need macOS" in table and "0 pass" in table
    assert ValidationReport("x").passed is False  # nothing checked is not a pass


def test_coreml_is_spec_checked_not_passed_on_linux(vit_tiny_export: Path):
    report = validate_dir(vit_tiny_export, progress=False)
    coreml = [c for c in report.checks if c.artifact.endswith(".mlpackage")]
    assert coreml and all(c.status == NEEDS_MACOS for c in coreml)
    assert "spec ok" in coreml[0].note


@pytest.mark.macos
@pytest.mark.skipif(platform.system() != "Darwin", reason="Core ML prediction runs only on macOS")
def test_coreml_prediction_matches_eager_on_macos(vit_tiny_export: Path):
    import coremltools as ct

    vectors = np.load(vit_tiny_export / "test_vectors" / "model.npz")
    model = ct.models.MLModel(str(vit_tiny_export / "model.mlpackage"))
    out = model.predict({"pixel_values": vectors["seeded.input.pixel_values"]})["logits"]
    assert np.max(np.abs(out - vectors["seeded.output.logits"])) < 1e-3
