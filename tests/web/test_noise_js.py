"""The JavaScript generator (web_demo/core/noise.js) against runtime/noise.py: bit-identical float64
normals and float32 latents, 200k values per seed, seeds across the whole uint64 range."""

from __future__ import annotations

import hashlib
import json
import subprocess

from tomobile.runtime.noise import standard_normals

from .conftest import WEB_DEMO, node_binary

SEEDS = (0, 1, 42, 2**32 + 7, 2**63 + 5, 2**64 - 1)
COUNT = 200_000


def test_js_normals_are_bit_identical_to_python():
    out = subprocess.run([node_binary(), "tools/normals.js", str(COUNT), *map(str, SEEDS)], cwd=WEB_DEMO,
                         capture_output=True, text=True, check=True, timeout=300).stdout
    rows = [json.loads(line) for line in out.splitlines()]
    assert [int(r["seed"]) for r in rows] == list(SEEDS)
    for row in rows:
        values = standard_normals(int(row["seed"]), COUNT)
        assert row["float64_sha256"] == hashlib.sha256(values.astype("<f8").tobytes()).hexdigest(), row["seed"]
        assert row["float32_sha256"] == hashlib.sha256(values.astype("<f4").tobytes()).hexdigest(), row["seed"]
