"""The app contract of a WanPipeline export: `test_vectors/wan_contract.json` + `wan_contract_replay.bin`.

`tomobile export PIPELINE_DIR` writes both into the export folder (listed in the manifest with
their sha256). They hold what the Python reference computes for the pieces a port of the Wan
sampler must reimplement (docs/contract.md, "The Wan pipeline", is the specification):

    schedules     sigmas and timesteps of FlowMatchEulerDiscreteScheduler and UniPCMultistepScheduler
                  (flow prediction) for several shifts, orders and step counts, and the export's own
    prompt_clean  WanPipeline's prompt cleaning on cases a port must reproduce
    tokenizer     input ids and attention mask of the export's tokenizer at the text length, and
                  prompts over the text length (refused)
    scaling       the VAE's un-scaling latents / (1 / latents_std) + latents_mean on a portable-noise latent
    replay        full samplings with CFG, TDTM steps and LPL: per transformer call the step, the
                  timestep, the prompt (cond or uncond), the part, the sha256 of the input latent and
                  of the output velocity (stored in wan_contract_replay.bin); the final latent's sha256

The replays' velocities come from a synthetic function of (x, timestep, part, prompt), not the
transformer: the contract checks the sampler, which is elementwise, on a small latent of the Wan
layout [1, C, F, H, W]; the latent's shape is in each replay.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .contract import digest
from .flow_sampler import FlowSamplerConfig, guided, sample_flow
from .flow_schedule import flow_schedule
from .noise import latent_noise
from .sampler import LeapConfig
from .wan_artifacts import load_tokenizer
from .wan_prompt import PromptTooLong, prompt_clean, tokenize

log = logging.getLogger(__name__)

WAN_CONTRACT_VERSION = 1
WAN_CONTRACT_FILE = "test_vectors/wan_contract.json"
WAN_REPLAY_FILE = "test_vectors/wan_contract_replay.bin"
REPLAY_SHAPE = (1, 4, 3, 4, 4)  # [1, C, F, H, W]: an odd latent frame count, as Wan's (frames - 1) / 4 + 1
PARTS = ("transformer", "transformer_tdtm")

EULER_CONFIGS = {
    "euler_shift3": {"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000, "shift": 3.0},
    "euler_shift5": {"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000, "shift": 5.0},
    "euler_shift1": {"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000},
}
UNIPC_BASE = {"_class_name": "UniPCMultistepScheduler", "num_train_timesteps": 1000, "prediction_type": "flow_prediction",
              "use_flow_sigmas": True, "predict_x0": True, "final_sigmas_type": "zero", "lower_order_final": True,
              "solver_type": "bh2", "disable_corrector": []}
UNIPC_CONFIGS = {
    "unipc_shift3_order2": {**UNIPC_BASE, "flow_shift": 3.0, "solver_order": 2},  # Wan 2.1 T2V's shipped config
    "unipc_shift5_order2": {**UNIPC_BASE, "flow_shift": 5.0, "solver_order": 2},
    "unipc_shift3_order1": {**UNIPC_BASE, "flow_shift": 3.0, "solver_order": 1},
    "unipc_shift3_order3": {**UNIPC_BASE, "flow_shift": 3.0, "solver_order": 3},
}
SCHEDULE_STEPS = (1, 2, 3, 4, 10, 30, 50)

# WanPipeline's prompt_clean without ftfy: HTML entities unescaped twice, white space runs collapsed.
# The cases stay inside what every port implements: named entities amp, lt, gt, quot, apos, nbsp
# with their semicolon, decimal and hexadecimal character references, ASCII white space and U+00A0.
CLEAN_PROMPTS = (
    "a red circle moving left",
    "  a   red\tcircle\n\nmoving  left  ",
    "",
    " \t\r\n ",
    "a &amp; b",
    "a &amp;amp; b",
    "&amp;lt;b&amp;gt;",
    "&lt;i&gt;cat&lt;/i&gt; &quot;dog&quot; &apos;x&apos;",
    "&#65;&#x42;&#99; &#x1F431; &#233;t&#xE9;",
    "a&nbsp;red&#160;circle",
    "tom &amp jerry & friends",
    "café naïve 日本語 🚀",
)
TOKENIZER_PROMPTS = (
    "a red circle moving left",
    "A RED CIRCLE MOVING LEFT",
    "  a   blue\tsquare moving up  ",
    "a cat on the beach at night",
    "a zorblax florbing",
    "",
    "a green triangle, moving down!",
    "a &amp; the",
)


@dataclass(frozen=True)
class WanReplay:
    name: str
    scheduler: str  # a key of the schedules' configs, or "export"
    steps: int
    guidance: float
    lpl: str
    tdtm_steps: int
    seed: int


REPLAYS = (
    WanReplay("euler_cfg_tdtm2", "euler_shift3", 6, 5.0, "off", 2, 0),
    WanReplay("euler_nocfg_lpl3", "euler_shift5", 6, 1.0, "3", 0, 1),
    WanReplay("unipc_cfg_tdtm2", "unipc_shift3_order2", 6, 5.0, "off", 2, 42),
    WanReplay("unipc_shift5_cfg_lpl4_tdtm1", "unipc_shift5_order2", 7, 4.3, "4", 1, 2**32 + 7),
    WanReplay("unipc_order3_lplauto", "unipc_shift3_order3", 12, 5.0, "auto", 3, 2**63 + 5),
    WanReplay("unipc_order1", "unipc_shift3_order1", 5, 6.1, "off", 0, 7),
    WanReplay("export_cfg_tdtm2", "export", 4, 5.0, "off", 2, 3),
)


def _schedule_entry(name: str, config: dict, steps: int) -> dict:
    s = flow_schedule(config, steps)
    return {"name": name, "steps": steps, "kind": s.kind.value, "sigmas": list(s.sigmas), "timesteps": list(s.timesteps),
            "order": s.order, "lower_order_final": s.lower_order_final, "solver_type": s.solver_type}


def _schedules_section(configs: dict[str, dict]) -> list[dict]:
    return [_schedule_entry(name, config, n) for name, config in configs.items() for n in SCHEDULE_STEPS]


def _tokenizer_section(tokenizer, length: int) -> dict:
    cases = []
    for text in TOKENIZER_PROMPTS:
        ids, mask = tokenize(tokenizer, text, length)
        cases.append({"text": text, "input_ids": [int(i) for i in ids[0]], "attention_mask": [int(m) for m in mask[0]]})
    long_text = " ".join(["a red circle"] * length)
    try:
        tokenize(tokenizer, long_text, length)
        too_long = []
    except PromptTooLong:
        too_long = [{"text": long_text, "tokens": len(tokenizer([prompt_clean(long_text)])["input_ids"][0])}]
    return {"text_tokens": length, "cases": cases, "too_long": too_long}


def unscale(latents: np.ndarray, mean: list[float], std: list[float]) -> np.ndarray:
    """WanPipeline's un-scaling before vae.decode, in its float32 order: latents / (1 / std) + mean."""
    shape = (1, len(mean)) + (1,) * (latents.ndim - 2)
    inv_std = (np.float32(1.0) / np.asarray(std, np.float32)).reshape(shape)
    return (latents / inv_std + np.asarray(mean, np.float32).reshape(shape)).astype(np.float32)


def _scaling_section(mean: list[float], std: list[float], shape: tuple[int, ...]) -> dict:
    seed = 5
    return {"latents_mean": mean, "latents_std": std, "shape": list(shape), "seed": str(seed),
            "input_sha256": digest(latent_noise(shape, seed)), "output_sha256": digest(unscale(latent_noise(shape, seed), mean, std))}


def synthetic_velocity(x: np.ndarray, timestep: float, part: str, branch: str) -> np.ndarray:
    """A velocity that depends on x, the timestep, the part and the prompt, so every call differs."""
    scale = np.float32(0.9 if part == "transformer_tdtm" else 1.0)
    bias = np.float32((0.3 if branch == "cond" else -0.2) * timestep / 1000.0)
    return (np.tanh(x) * scale + bias).astype(np.float32)


def _record(case: WanReplay, config: dict, out: bytearray) -> dict:
    schedule = flow_schedule(config, case.steps)
    cfg = FlowSamplerConfig(schedule, case.guidance, LeapConfig.parse(case.lpl), case.tdtm_steps)
    calls: list[dict] = []
    step = [-1]
    states = {"cond": np.ones((1, 1, 1), np.float32), "uncond": np.zeros((1, 1, 1), np.float32)}

    def denoise(x: np.ndarray, t: float, prompt: np.ndarray, merged: bool) -> np.ndarray:
        part, branch = PARTS[int(merged)], "cond" if prompt[0, 0, 0] == 1 else "uncond"
        v = synthetic_velocity(x, t, part, branch)
        calls.append({"step": step[0], "timestep": float(np.float32(t)), "branch": branch, "part": part,
                      "input_sha256": digest(x), "output_offset": len(out), "output_sha256": digest(v)})
        out.extend(v.astype("<f4").tobytes())
        return v

    noise = latent_noise(REPLAY_SHAPE, case.seed)
    uncond = states["uncond"] if case.guidance > 1.0 else None
    velocity = guided(denoise, states["cond"], uncond, case.guidance)

    def counted(x: np.ndarray, t: float, merged: bool) -> np.ndarray:
        step[0] += 1
        return velocity(x, t, merged)

    result = sample_flow(counted, noise, cfg)
    return {"name": case.name, "scheduler": case.scheduler, "steps": case.steps, "guidance": case.guidance,
            "lpl": case.lpl, "tdtm_steps": case.tdtm_steps, "seed": str(case.seed), "shape": list(REPLAY_SHAPE),
            "noise_sha256": digest(noise), "calls": calls, "leap_at": result.leap_at,
            "merged_steps": min(case.tdtm_steps, result.calls), "similarities": result.similarities,
            "final_latent_sha256": digest(result.x)}


def build_wan_contract(scheduler: dict, tokenizer, text_tokens: int, mean: list[float],
                       std: list[float], latent_shape: tuple[int, ...]) -> tuple[dict, bytes]:
    """wan_contract.json's content and the replay bytes, for an export with this scheduler config,
    tokenizer, text length, VAE scaling and latent shape."""
    configs = {**EULER_CONFIGS, **UNIPC_CONFIGS, "export": scheduler}
    replay_bytes = bytearray()
    replays = [_record(case, configs[case.scheduler], replay_bytes) for case in REPLAYS]
    contract = {
        "contract_version": WAN_CONTRACT_VERSION,
        "kind": "wan-pipeline",
        "digest": "sha256 (lowercase hex) of float32 little-endian bytes in C order",
        "scheduler_configs": configs,
        "schedules": _schedules_section(configs),
        "prompt_clean": [{"text": t, "clean": prompt_clean(t)} for t in CLEAN_PROMPTS],
        "tokenizer": _tokenizer_section(tokenizer, text_tokens),
        "scaling": _scaling_section(mean, std, latent_shape),
        "replay_file": Path(WAN_REPLAY_FILE).name,
        "replay_file_bytes": len(replay_bytes),
        "replay_file_sha256": hashlib.sha256(replay_bytes).hexdigest(),
        "replay": replays,
    }
    return contract, bytes(replay_bytes)


def write_wan_contract(folder: Path, pipeline: dict) -> list[str]:
    """Write the contract into a staged WanPipeline export folder (its manifest's `pipeline` entry
    given); returns the relative paths."""
    scheduler = json.loads((folder / pipeline["scheduler"]["config"]).read_text(encoding="utf-8"))
    contract, replay = build_wan_contract(scheduler, load_tokenizer(folder / pipeline["tokenizer"]),
                                          int(pipeline["text_tokens"]), pipeline["latents_mean"],
                                          pipeline["latents_std"], tuple(pipeline["latent_shape"]))
    (folder / WAN_CONTRACT_FILE).parent.mkdir(parents=True, exist_ok=True)
    (folder / WAN_REPLAY_FILE).write_bytes(replay)
    (folder / WAN_CONTRACT_FILE).write_text(json.dumps(contract, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    log.info("wrote %s (%d replay calls)", WAN_CONTRACT_FILE, sum(len(r["calls"]) for r in contract["replay"]))
    return [WAN_CONTRACT_FILE, WAN_REPLAY_FILE]
