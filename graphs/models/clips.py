"""Procedural training clips for `video-dit-tiny`: one coloured shape moving steadily on black.

A clip is float32 [T, H, W, 3] in [0, 1]. Captions read "a red circle moving left"; the 48
captions (3 shapes x 4 colours x 4 directions) are the whole vocabulary of the demo model.
Shapes are drawn with a one-pixel anti-aliased edge from signed distances, so they stay
recognisable at 32x32. Pure numpy; deterministic for a given `numpy.random.Generator`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SHAPES = ("circle", "square", "triangle")
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (1.0, 0.0, 0.0),
    "green": (0.0, 1.0, 0.0),
    "blue": (0.0, 0.0, 1.0),
    "yellow": (1.0, 1.0, 0.0),
}
DIRECTIONS: dict[str, tuple[float, float]] = {  # (dx, dy) in image coordinates, y down
    "left": (-1.0, 0.0),
    "right": (1.0, 0.0),
    "up": (0.0, -1.0),
    "down": (0.0, 1.0),
}


@dataclass(frozen=True)
class ClipSpec:
    """What one clip shows: the caption's three words."""

    shape: str
    colour: str
    direction: str

    @property
    def caption(self) -> str:
        return f"a {self.colour} {self.shape} moving {self.direction}"


def all_specs() -> list[ClipSpec]:
    """The 48 caption classes in a fixed order (shape, colour, direction)."""
    return [ClipSpec(s, c, d) for s in SHAPES for c in COLOURS for d in DIRECTIONS]


CAPTION_FILLERS = ("a", "an", "the", "moving")


def caption_words(text: str) -> list[str]:
    return text.lower().replace(",", " ").replace(".", " ").split()


def unknown_words(text: str) -> list[str]:
    """Words of `text` outside the demo model's vocabulary (its captions' words)."""
    known = {*SHAPES, *COLOURS, *DIRECTIONS, *CAPTION_FILLERS}
    return [w for w in caption_words(text) if w not in known]


def parse_caption(text: str) -> ClipSpec | None:
    """Find a shape, a colour and a direction word in free text; None if any is missing."""
    words = caption_words(text)
    shape = next((w for w in words if w in SHAPES), None)
    colour = next((w for w in words if w in COLOURS), None)
    direction = next((w for w in words if w in DIRECTIONS), None)
    if shape is None or colour is None or direction is None:
        return None
    return ClipSpec(shape, colour, direction)


def _coverage(shape: str, xs: np.ndarray, ys: np.ndarray, cx: float, cy: float, r: float) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] of a shape centred at (cx, cy) with half-size r."""
    dx, dy = xs - cx, ys - cy
    if shape == "circle":
        dist = np.sqrt(dx * dx + dy * dy) - r
    elif shape == "square":
        dist = np.maximum(np.abs(dx), np.abs(dy)) - r * 0.85
    elif shape == "triangle":
        # Upward isosceles triangle: apex at (0, -r), base at y = +r from x = -r to +r.
        base = dy - r
        slope = (2.0 * np.abs(dx) - (dy + r)) / np.sqrt(5.0)
        dist = np.maximum(base, slope)
    else:
        raise ValueError(f"unknown shape {shape!r}; allowed: {', '.join(SHAPES)}")
    return np.clip(0.5 - dist, 0.0, 1.0)


def render_clip(
    spec: ClipSpec,
    frames: int,
    size: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """One clip, float32 [frames, size, size, 3] in [0, 1].

    Little varies within a caption, so a model trained on a CPU in minutes can learn what each word
    means rather than where shapes may appear: the shape starts within 3 pixels of the edge it moves
    away from, centred across the motion within +-3 pixels; half-size 5..6 and speed 1.6..2 pixels
    per frame (both scaled by size/32). It stays inside the frame for the whole clip.
    """
    scale = size / 32.0
    r = rng.uniform(5.0, 6.0) * scale
    speed = rng.uniform(1.6, 2.0) * scale
    travel = speed * (frames - 1)
    margin = r + 1.0
    dx, dy = DIRECTIONS[spec.direction]
    lo, hi = margin, size - 1 - margin
    centre = (size - 1) / 2.0

    def start(d: float) -> float:
        if d > 0:
            return lo + rng.uniform(0.0, max(0.0, min(3.0 * scale, hi - travel - lo)))
        if d < 0:
            return hi - rng.uniform(0.0, max(0.0, min(3.0 * scale, hi - travel - lo)))
        return centre + rng.uniform(-3.0, 3.0) * scale

    x0, y0 = start(dx), start(dy)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    colour = np.asarray(COLOURS[spec.colour], dtype=np.float32)
    out = np.zeros((frames, size, size, 3), dtype=np.float32)
    for f in range(frames):
        cov = _coverage(spec.shape, xs, ys, x0 + dx * speed * f, y0 + dy * speed * f, r)
        out[f] = cov[..., None] * colour  # (H, W, 3)
    return out


def sample_batch(
    batch: int, frames: int, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Random clips and their caption-class indices into all_specs(): ([B, T, H, W, 3], [B])."""
    specs = all_specs()
    idx = rng.integers(0, len(specs), size=batch)
    clips = np.stack([render_clip(specs[i], frames, size, rng) for i in idx])
    return clips, idx
