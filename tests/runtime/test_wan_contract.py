"""wan_contract.json from the offline tokenizer: every section present, floats that round-trip, and
replays that the Python flow sampler reproduces from the recorded velocities alone, as a port does."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from wan_fixture import offline_tokenizer, scheduler_config

from tomobile.runtime.contract import digest
from tomobile.runtime.flow_sampler import FlowSamplerConfig, guided, sample_flow
from tomobile.runtime.flow_schedule import flow_schedule
from tomobile.runtime.noise import latent_noise
from tomobile.runtime.sampler import LeapConfig
from tomobile.runtime.wan_contract import REPLAY_SHAPE, REPLAYS, build_wan_contract, synthetic_velocity, unscale

MEAN, STD = [0.1, -0.2, 0.3, 0.0], [1.5, 0.9, 2.0, 1.1]


@pytest.fixture(scope="module")
def contract():
    content, replay = build_wan_contract(scheduler_config("unipc"), offline_tokenizer(), 8, MEAN, STD, (1, 4, 3, 2, 2))
    return json.loads(json.dumps(content)), replay


def test_sections(contract):
    c, replay = contract
    assert c["kind"] == "wan-pipeline" and c["scheduler_configs"]["export"]["_class_name"] == "UniPCMultistepScheduler"
    kinds = {e["kind"] for e in c["schedules"]}
    assert kinds == {"FlowMatchEulerDiscreteScheduler", "UniPCMultistepScheduler"}
    for e in c["schedules"]:
        s = flow_schedule(c["scheduler_configs"][e["name"]], e["steps"])
        assert e["sigmas"] == list(s.sigmas) and e["timesteps"] == list(s.timesteps)
    shift3, shift5 = ([e["sigmas"] for e in c["schedules"] if e["name"] == n and e["steps"] == 10][0]
                      for n in ("euler_shift3", "euler_shift5"))
    assert shift3 != shift5
    assert {"text": "a &amp;amp; b", "clean": "a & b"} in c["prompt_clean"]
    assert all(len(case["input_ids"]) == 8 for case in c["tokenizer"]["cases"]) and c["tokenizer"]["too_long"]
    x = torch.from_numpy(latent_noise((1, 4, 3, 2, 2), 5))  # WanPipeline's own lines, in torch
    inv_std = 1.0 / torch.tensor(STD).view(1, 4, 1, 1, 1)
    assert c["scaling"]["output_sha256"] == digest((x / inv_std + torch.tensor(MEAN).view(1, 4, 1, 1, 1)).numpy())
    assert digest(unscale(x.numpy(), MEAN, STD)) == c["scaling"]["output_sha256"] != c["scaling"]["input_sha256"]
    assert c["replay_file_bytes"] == len(replay) == sum(len(r["calls"]) for r in c["replay"]) * 4 * int(np.prod(REPLAY_SHAPE))


def test_calls_follow_cfg_tdtm_and_lpl(contract):
    c, _ = contract
    by_name = {r["name"]: r for r in c["replay"]}
    euler = by_name["euler_cfg_tdtm2"]  # guidance 5: cond then uncond each step; TDTM the first 2 steps
    assert [(k["step"], k["branch"], k["part"]) for k in euler["calls"][:6]] == [
        (0, "cond", "transformer_tdtm"), (0, "uncond", "transformer_tdtm"), (1, "cond", "transformer_tdtm"),
        (1, "uncond", "transformer_tdtm"), (2, "cond", "transformer"), (2, "uncond", "transformer")]
    nocfg = by_name["euler_nocfg_lpl3"]  # guidance 1: one call per step; the leap after step 3
    assert [k["branch"] for k in nocfg["calls"]] == ["cond"] * 4 and nocfg["leap_at"] == 3
    auto = by_name["unipc_order3_lplauto"]
    assert auto["similarities"] and auto["leap_at"] is not None


@pytest.mark.parametrize("index", range(len(REPLAYS)))
def test_replay_reproduces_from_recorded_velocities(contract, index):
    c, replay = contract
    entry, size = c["replay"][index], int(np.prod(REPLAY_SHAPE))
    calls = iter(entry["calls"])

    def recorded(x, t, states, merged):
        call = next(calls)
        assert digest(x) == call["input_sha256"] and np.float32(t) == np.float32(call["timestep"])
        assert call["part"] == ("transformer_tdtm" if merged else "transformer")
        v = np.frombuffer(replay, "<f4", size, call["output_offset"]).reshape(REPLAY_SHAPE)
        assert np.array_equal(v, synthetic_velocity(x, t, call["part"], call["branch"]))
        return v

    schedule = flow_schedule(c["scheduler_configs"][entry["scheduler"]], entry["steps"])
    cfg = FlowSamplerConfig(schedule, entry["guidance"], LeapConfig.parse(entry["lpl"]), entry["tdtm_steps"])
    states = np.ones((1, 1, 1), np.float32), np.zeros((1, 1, 1), np.float32)
    result = sample_flow(guided(recorded, *states, entry["guidance"]), latent_noise(REPLAY_SHAPE, int(entry["seed"])), cfg)
    assert next(calls, None) is None and result.leap_at == entry["leap_at"]
    assert digest(result.x) == entry["final_latent_sha256"]
