"""The analytic detector reads colour, shape and direction off rendered clips."""

import numpy as np
import pytest

from tomobile.graphs.models.clips import ClipSpec, all_specs, parse_caption, render_clip
from tomobile.runtime.detect import detect


def test_detects_every_caption_class_on_ground_truth_clips():
    rng = np.random.default_rng(0)
    for spec in all_specs():
        for _ in range(3):
            assert detect(render_clip(spec, 8, 32, rng)).compliance(spec)["all"], spec


def test_black_clip_detects_nothing():
    d = detect(np.zeros((8, 32, 32, 3), np.float32))
    assert (d.colour, d.shape, d.direction) == (None, None, None)
    assert not d.compliance(ClipSpec("circle", "red", "left"))["all"]


def test_static_shape_has_no_direction():
    clip = render_clip(ClipSpec("square", "blue", "left"), 8, 32, np.random.default_rng(1))
    still = np.repeat(clip[:1], 8, axis=0)
    assert detect(still).direction is None


@pytest.mark.parametrize("text,expected", [
    ("a red circle moving left", ClipSpec("circle", "red", "left")),
    ("Yellow triangle, moving down.", ClipSpec("triangle", "yellow", "down")),
    ("a purple circle", None),
])
def test_parse_caption(text, expected):
    assert parse_caption(text) == expected
