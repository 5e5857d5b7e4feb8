"""Analytic prompt-compliance detector for moving-shape clips: colour, shape, direction.

No learned parts. Per frame, the foreground is every pixel whose brightest channel exceeds a
threshold. Colour: nearest palette entry to the mean foreground RGB (median over frames).
Shape: fill ratio of the foreground inside its bounding box (square ~0.9-1, circle ~0.78,
triangle ~0.5), median over frames. Direction: sign of the dominant axis of centroid travel
(a least-squares slope over frames).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..graphs.models.clips import COLOURS, ClipSpec

FOREGROUND = 0.35
MIN_PIXELS = 6
# Fill-ratio boundaries: below 0.65 triangle, below 0.9 circle, else square.
TRIANGLE_MAX = 0.65
CIRCLE_MAX = 0.9
MIN_TRAVEL = 2.0  # pixels over the clip


@dataclass(frozen=True)
class Detection:
    colour: str | None
    shape: str | None
    direction: str | None

    def compliance(self, spec: ClipSpec) -> dict[str, bool]:
        c, s, d = self.colour == spec.colour, self.shape == spec.shape, self.direction == spec.direction
        return {"colour": c, "shape": s, "direction": d, "all": c and s and d}


def _frame_stats(frame: np.ndarray) -> tuple[np.ndarray, float, float, float] | None:
    """frame (H, W, 3) -> (mean rgb, fill ratio, cx, cy) of the foreground, or None if empty."""
    fg = frame.max(axis=-1) > FOREGROUND  # (H, W)
    if fg.sum() < MIN_PIXELS:
        return None
    ys, xs = np.nonzero(fg)
    box = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
    return frame[fg].mean(axis=0), fg.sum() / box, float(xs.mean()), float(ys.mean())


def _nearest_colour(rgb: np.ndarray) -> str:
    names = list(COLOURS)
    palette = np.asarray([COLOURS[n] for n in names])  # (4, 3)
    unit = rgb / max(float(rgb.max()), 1e-6)
    return names[int(np.argmin(((palette - unit) ** 2).sum(axis=1)))]


def _shape(fill: float) -> str:
    if fill < TRIANGLE_MAX:
        return "triangle"
    return "circle" if fill < CIRCLE_MAX else "square"


def _direction(cx: np.ndarray, cy: np.ndarray, frames: np.ndarray) -> str | None:
    if len(frames) < 2:
        return None
    sx = np.polyfit(frames, cx, 1)[0] * (frames[-1] - frames[0])
    sy = np.polyfit(frames, cy, 1)[0] * (frames[-1] - frames[0])
    if max(abs(sx), abs(sy)) < MIN_TRAVEL:
        return None
    if abs(sx) >= abs(sy):
        return "right" if sx > 0 else "left"
    return "down" if sy > 0 else "up"


def detect(clip: np.ndarray) -> Detection:
    """clip (T, H, W, 3) float in [0, 1] -> what it shows."""
    stats = [(i, s) for i, s in enumerate(_frame_stats(f) for f in clip) if s is not None]
    if not stats:
        return Detection(None, None, None)
    rgb = np.median(np.stack([s[0] for _, s in stats]), axis=0)
    fill = float(np.median([s[1] for _, s in stats]))
    idx = np.asarray([i for i, _ in stats], dtype=np.float64)
    cx = np.asarray([s[2] for _, s in stats])
    cy = np.asarray([s[3] for _, s in stats])
    return Detection(_nearest_colour(rgb), _shape(fill), _direction(cx, cy, idx))
