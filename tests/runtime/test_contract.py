"""contract.json from a small fake runtime: every section present, floats that round-trip, and a
replay that the Python sampler reproduces from the recorded velocities alone."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tomobile.runtime.contract import NOISE_SEEDS, REPLAYS, TOKENIZER_PROMPTS, build_contract, digest
from tomobile.runtime.noise import latent_noise, standard_normals
from tomobile.runtime.sampler import LeapConfig, SamplerConfig, sample, timesteps
from tomobile.runtime.video import RuntimeKind, VideoRuntime, frames_from_latent

SHAPE = (1, 3, 2, 4, 4)
DEFAULTS = {"guidance": 4.0, "shift": 2.0}


def _fake_runtime() -> VideoRuntime:
    """A denoiser that depends on x, t and the variant, so every recorded call differs."""
    scale = {"denoiser": 1.0, "denoiser_tdtm": 0.9, "denoiser_tome": 0.8, "denoiser_tdtm_tome": 0.7}

    def make(name):
        return lambda x, t, states, mask, g: (np.tanh(x) * np.float32(scale[name]) + t[0] * states.mean()).astype(np.float32)

    def encode(prompt):
        return np.full((1, 4, 2), len(prompt) / 10, np.float32), np.ones((1, 4), np.float32)

    return VideoRuntime(RuntimeKind.EAGER, encode, {n: make(n) for n in scale}, SHAPE)


def _fake_tokenize(texts, length):
    ids = np.array([[101] + [ord(c) % 1000 for c in texts[0]][: length - 2] + [102]], np.int64)
    ids = np.pad(ids, ((0, 0), (0, length - ids.shape[1])))
    return ids, (ids > 0).astype(np.int64)


@pytest.fixture(scope="module")
def contract():
    content, replay = build_contract(_fake_runtime(), _fake_tokenize, 8, DEFAULTS)
    return json.loads(json.dumps(content)), replay


def test_sections_and_sizes(contract):
    c, replay = contract
    assert [int(n["seed"]) for n in c["noise"]] == list(NOISE_SEEDS)
    for entry in c["noise"]:
        assert np.array_equal(np.array(entry["values"]), standard_normals(int(entry["seed"]), 64))  # exact round trip
    assert c["latent_noise"][3]["sha256"] == digest(latent_noise(SHAPE, NOISE_SEEDS[3]))
    assert [case["text"] for case in c["tokenizer"]["cases"]] == list(TOKENIZER_PROMPTS)
    assert all(len(case["input_ids"]) == 8 for case in c["tokenizer"]["cases"])
    assert c["timesteps"][0]["values"] == timesteps(30, 2.0)
    assert c["replay_file_bytes"] == len(replay) == sum(len(r["calls"]) for r in c["replay"]) * 4 * int(np.prod(SHAPE))
    assert {e["leap_at"] for e in c["lpl"] if e["name"].startswith("synthetic")} > {None}  # some sequences leap


def test_tdtm_variants_follow_the_schedule(contract):
    c, _ = contract
    first = c["tdtm"][0]
    assert (first["steps"], first["tdtm_steps"], first["lpl"]) == (30, 15, "15")
    assert first["variants"] == ["denoiser_tdtm"] * 15 + ["denoiser"] and first["leap_at"] == 15
    last = c["tdtm"][-1]  # the latest fixed leap allowed: N = steps - 2
    assert last["lpl"] == "28" and last["leap_at"] == 28 and len(last["variants"]) == 29
    short = next(e for e in c["lpl"] if e["name"] == "synthetic:short")  # auto leap decided at the last step: none
    assert short["leap_at"] is None


def test_replay_reproduces_from_recorded_velocities(contract):
    c, replay = contract
    size = int(np.prod(SHAPE))
    for case, entry in zip(REPLAYS, c["replay"], strict=True):
        calls = iter(entry["calls"])

        def recorded(x, t, merged, calls=calls):
            call = next(calls)
            assert digest(x) == call["input_sha256"] and np.float32(t) == np.float32(call["t_float32"])
            v = np.frombuffer(replay, "<f4", size, call["output_offset"]).reshape(SHAPE)
            assert digest(v) == call["output_sha256"]
            return v

        cfg = SamplerConfig(steps=case.steps, leap=LeapConfig.parse(case.lpl), tdtm_steps=case.tdtm_steps)
        result = sample(recorded, latent_noise(SHAPE, case.seed), cfg)
        assert result.calls == len(entry["calls"]) and result.leap_at == entry["leap_at"]
        assert digest(result.x) == entry["final_latent_sha256"]
        assert digest(frames_from_latent(result.x)) == entry["frames_sha256"]
        assert result.similarities == entry["similarities"]
