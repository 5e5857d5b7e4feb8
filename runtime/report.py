"""A validation report: one row per (artifact, case, output) with its max abs error, PSNR and
status against named thresholds, the comparison that makes a row, and the table the CLI prints.

The thresholds: fp32 artifacts within FP32_MAX_ABS_ERROR of eager fp32; fp16 and int8 artifacts
by PSNR against eager fp32 (Apple's ABSOLUTE_MIN_PSNR for fp16). Core ML rows say 'needs macOS',
never pass, on Linux.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from ..graphs.errors import TomobileError
from ..graphs.methods.margins import MIN_MARGIN
from .tables import aligned_table

FP32_MAX_ABS_ERROR = 1e-4  # fp32 artifacts: max abs error against eager fp32
FP16_MIN_PSNR_DB = 35.0  # fp16 artifacts: PSNR against eager fp32 (Apple's ABSOLUTE_MIN_PSNR)
INT8_MIN_PSNR_DB = 30.0  # int8 (dynamic quantisation) artifacts: PSNR against eager fp32
PASS, FAIL, NEEDS_MACOS = "pass", "FAIL", "needs macOS"


class ValidationError(TomobileError, RuntimeError):
    """The folder cannot be validated at all: missing manifest, checksum mismatch, unreadable file."""


@dataclass(frozen=True)
class OutputCheck:
    artifact: str
    case: str
    output: str
    shape: tuple[int, ...]
    max_abs_error: float | None
    psnr_db: float | None
    status: str
    note: str = ""


@dataclass
class ValidationReport:
    folder: str
    checks: list[OutputCheck] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.status != FAIL for c in self.checks)

    def to_json(self) -> dict:
        rows = [{**asdict(c), "shape": list(c.shape)} for c in self.checks]
        for row in rows:
            if row["psnr_db"] is not None and math.isinf(row["psnr_db"]):
                row["psnr_db"] = "inf"
        return {"passed": self.passed, "thresholds": {"fp32_max_abs_error": FP32_MAX_ABS_ERROR,
                                                      "fp16_min_psnr_db": FP16_MIN_PSNR_DB,
                                                      "int8_min_psnr_db": INT8_MIN_PSNR_DB,
                                                      "merge_min_margin": MIN_MARGIN}, "checks": rows}


def psnr(reference: np.ndarray, actual: np.ndarray, peak: float | None = None) -> float:
    """20 log10(peak / rmse), peak = max |reference| unless given; inf when identical."""
    ref = reference.astype(np.float64)
    mse = float(np.mean((ref - actual.astype(np.float64)) ** 2))
    if mse == 0.0:
        return math.inf
    peak = peak or float(np.max(np.abs(ref))) or 1.0
    return 20.0 * math.log10(peak / math.sqrt(mse))


def compare(reference: np.ndarray, actual: np.ndarray, precision: str) -> tuple[float, float, str, str]:
    """(max abs error, PSNR, status, note) under the threshold for `precision`."""
    if reference.shape != actual.shape:
        return math.nan, math.nan, FAIL, f"shape {actual.shape} != eager {reference.shape}"
    err = float(np.max(np.abs(reference.astype(np.float64) - actual.astype(np.float64)))) if reference.size else 0.0
    quality = psnr(reference, actual)
    if not np.all(np.isfinite(actual)):
        return err, quality, FAIL, "non-finite values"
    if precision in ("fp16", "int8"):
        floor = FP16_MIN_PSNR_DB if precision == "fp16" else INT8_MIN_PSNR_DB
        ok = quality >= floor
        return err, quality, PASS if ok else FAIL, f"PSNR >= {floor:g} dB"
    ok = err <= FP32_MAX_ABS_ERROR
    return err, quality, PASS if ok else FAIL, f"max abs <= {FP32_MAX_ABS_ERROR:g}"


def format_table(report: ValidationReport) -> str:
    header = ("artifact", "case", "output", "shape", "max abs err", "PSNR dB", "result")
    rows = [header]
    for c in report.checks:
        err = "-" if c.max_abs_error is None else f"{c.max_abs_error:.2e}"
        db = "-" if c.psnr_db is None else ("inf" if math.isinf(c.psnr_db) else f"{c.psnr_db:.1f}")
        rows.append((c.artifact, c.case, c.output, "x".join(map(str, c.shape)) or "-", err, db,
                     f"FAIL ({c.note})" if c.status == FAIL else
                     f"{c.status} ({c.note})" if c.note.startswith("near-tie") else c.status))  # export/near_ties.py
    lines = [aligned_table(rows)]
    verdict = "PASSED" if report.passed else "FAILED"
    lines.append(f"validation {verdict}: {sum(c.status == PASS for c in report.checks)} pass, "
                 f"{sum(c.status == FAIL for c in report.checks)} fail, "
                 f"{sum(c.status == NEEDS_MACOS for c in report.checks)} need macOS")
    return "\n".join(lines)
