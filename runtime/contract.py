"""The contract every port checks itself against: `test_vectors/contract.json` + `contract_replay.bin`.

`tomobile export video-dit-tiny` writes both into the export folder (listed in the manifest with
their sha256). They hold what the Python reference computes for the pieces an app must reimplement
(docs/contract.md is the specification):

    noise         the first 64 float64 normals of the portable generator for 6 seeds, and the
                  sha256 of the float32 latent for the model's shape
    tokenizer     input ids and attention mask for 24 prompts at the caption length
    timesteps     the sampler's times for several step counts, both timestep modes
    lpl           similarity sequences (recorded from the replays and synthetic) with the auto
                  rule's decision, and fixed-leap decisions
    tdtm          the denoiser variant used by every call for several settings
    replay        two full generations: per denoiser call the step, t, variant, sha256 of the input
                  latent and of the output velocity (stored in contract_replay.bin), and the final
                  latent's and frames' sha256

A port is right when its sampler, fed the recorded velocities, reproduces every input digest and
the final digests. Digest = lowercase hex sha256 of the float32 little-endian bytes in C order.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..graphs.models.text_context import tokenize
from ..graphs.models.video_zoo import SAMPLER_DEFAULTS, load_video_dit
from .noise import latent_noise, standard_normals
from .sampler import (
    AutoLeap,
    LeapConfig,
    LeapMode,
    SamplerConfig,
    SimilarityMode,
    TimestepMode,
    default_min_steps,
    sample,
    timesteps,
    velocity_similarity,
)
from .video import VideoRuntime, eager_runtime, frames_from_latent, generate, variant_name

log = logging.getLogger(__name__)

CONTRACT_VERSION = 1
CONTRACT_FILE = "test_vectors/contract.json"
REPLAY_FILE = "test_vectors/contract_replay.bin"
NOISE_SEEDS = (0, 1, 42, 2**32 + 7, 2**63 + 5, 2**64 - 1)
NOISE_VALUES = 64
# Upper case, punctuation, digits, unknown words, accents, CJK, emoji, control characters, empty,
# white space only, and captions longer than the caption length (truncation).
TOKENIZER_PROMPTS = (
    "a red circle moving left",
    "A RED CIRCLE MOVING LEFT",
    "a blue square moving up",
    "a green triangle moving down",
    "a yellow circle moving right",
    "",
    "   ",
    "Hello, world! (moving?) -- yes: 'left'; \"right\".",
    "3 red circles, 42 squares and 1000000 triangles",
    "a zorblax florbing quuxily",
    "café naïve résumé Ångström über",
    "ÀÉÎÕÜ façade",
    "日本語のテキスト 中文",
    "a cat 🐱 moving left 🚀",
    "tabs\tand\nnewlines\r\nhere",
    "control\u0000char\u0007s and a zero\u200bwidth space",
    "state-of-the-art text-to-video on-device",
    "don't won't it's the circle's path",
    "a red circle moving left while a blue square moves up and a green triangle moves down slowly",
    "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen",
    "unbelievably incomprehensible antidisestablishmentarianism",
    "#hashtag @mention $100 50% a&b x+y=z <tag>",
    "MiXeD CaSe WoRdS",
    "a",
)
TIMESTEP_CASES = ((30, "discrete"), (30, "continuous"), (20, "discrete"), (16, "continuous"), (7, "discrete"), (1, "discrete"))
# (steps, tdtm_steps, lpl, spatial): which variant each call uses (leaps that do not depend on the velocity).
TDTM_CASES = ((30, 15, "15", False), (30, 0, "off", True), (30, 30, "off", False), (20, 5, "8", True), (30, 15, "28", False))


@dataclass(frozen=True)
class ReplayCase:
    name: str
    prompt: str
    seed: int
    lpl: str
    tdtm_steps: int
    spatial: bool
    steps: int = 30


REPLAYS = (
    ReplayCase("lpl15_tdtm15", "a red circle moving left", 0, "15", 15, False),
    ReplayCase("lplauto_tdtm10_tome", "a blue square moving up", 2**32 + 7, "auto", 10, True),
)


def digest(array: np.ndarray) -> str:
    """sha256 (hex) of the float32 little-endian bytes in C order."""
    return hashlib.sha256(np.ascontiguousarray(array, dtype="<f4").tobytes()).hexdigest()


def _noise_section(shape: tuple[int, ...]) -> tuple[list, list]:
    noise = [{"seed": str(s), "values": [float(v) for v in standard_normals(s, NOISE_VALUES)]} for s in NOISE_SEEDS]
    latents = [{"seed": str(s), "shape": list(shape), "sha256": digest(latent_noise(shape, s))} for s in NOISE_SEEDS]
    return noise, latents


def _tokenizer_section(tokenize: Callable, caption_len: int) -> dict:
    cases = []
    for text in TOKENIZER_PROMPTS:
        ids, mask = tokenize([text], caption_len)
        cases.append({"text": text, "input_ids": [int(i) for i in ids[0]], "attention_mask": [int(m) for m in mask[0]]})
    return {"caption_len": caption_len, "cases": cases}


def _timesteps_section(shift: float) -> list[dict]:
    return [{"steps": n, "shift": shift, "mode": mode, "values": timesteps(n, shift, TimestepMode(mode))}
            for n, mode in TIMESTEP_CASES]


def auto_leap_at(similarities: list[float], steps: int, cfg: LeapConfig) -> int | None:
    """The auto rule's decision on a similarity sequence (similarities[j] belongs to step j + 1)."""
    rule = AutoLeap(cfg, steps)
    for j, sim in enumerate(similarities):
        step = j + 1
        if rule.observe(step, sim) and step < steps - 1:
            return step
    return None


def _synthetic_similarities() -> list[tuple[str, int, list[float]]]:
    """Sequences that exercise the rule: a plateau, late gains, ties with the tolerance, no plateau."""
    rng = np.random.default_rng(7)
    rising = [float(0.5 + 0.5 * (1 - np.exp(-k / 3))) for k in range(1, 30)]
    return [
        ("plateau", 30, rising),
        ("noisy", 30, [float(v) for v in 0.9 + 0.05 * rng.standard_normal(29)]),
        ("always_gaining", 30, [0.01 * k for k in range(1, 30)]),
        ("gains_near_tolerance", 30, [0.5 + 0.001 * k for k in range(1, 30)]),
        ("negative", 20, [float(v) for v in -0.5 + 0.01 * rng.standard_normal(19)]),
        ("short", 7, [0.2, 0.4, 0.6, 0.6, 0.6, 0.6]),
    ]


def _lpl_section(replays: list[dict], velocities: dict[str, list[np.ndarray]]) -> list[dict]:
    base = LeapConfig(mode=LeapMode.AUTO)
    rule = {"tolerance": base.tolerance, "patience": base.patience}
    entries = []
    for case in replays:
        vs = velocities[case["name"]]
        for mode in SimilarityMode:
            sims = [velocity_similarity(a, b, mode) for a, b in zip(vs, vs[1:])]
            steps = case["settings"]["steps"]
            entries.append({"name": f"recorded:{case['name']}:{mode.value}", "mode": "auto", "replay": case["name"],
                            "similarity": mode.value, "steps": steps, "min_steps": default_min_steps(steps), **rule,
                            "similarities": sims, "leap_at": auto_leap_at(sims, steps, base)})
    for name, steps, sims in _synthetic_similarities():
        entries.append({"name": f"synthetic:{name}", "mode": "auto", "steps": steps, "min_steps": default_min_steps(steps),
                        **rule, "similarities": sims, "leap_at": auto_leap_at(sims, steps, base)})
    for steps, step in ((30, 15), (30, 1), (20, 18), (7, 3), (3, 1)):
        entries.append({"name": f"fixed:{step}_of_{steps}", "mode": "fixed", "steps": steps, "step": step,
                        "leap_at": _schedule(steps, 0, str(step), False)[1]})
    return entries


def _schedule(steps: int, tdtm_steps: int, lpl: str, spatial: bool) -> tuple[list[str], int | None]:
    """Variants per call and the leap step, from the Python sampler itself (a constant velocity)."""
    used: list[str] = []
    shape = (1, 1, 1, 2, 2)

    def velocity(x: np.ndarray, t: float, merged: bool) -> np.ndarray:
        used.append(variant_name(merged, spatial))
        return np.ones(shape, np.float32)

    cfg = SamplerConfig(steps=steps, leap=LeapConfig.parse(lpl), tdtm_steps=tdtm_steps)
    result = sample(velocity, np.zeros(shape, np.float32), cfg)
    return used, result.leap_at


def _tdtm_section() -> list[dict]:
    entries = []
    for steps, tdtm, lpl, spatial in TDTM_CASES:
        variants, leap_at = _schedule(steps, tdtm, lpl, spatial)
        entries.append({"steps": steps, "tdtm_steps": tdtm, "lpl": lpl, "spatial": spatial, "variants": variants,
                        "merged": [("_tdtm" in v) for v in variants], "leap_at": leap_at})
    return entries


def _record(rt: VideoRuntime, case: ReplayCase, defaults: dict, out: bytearray) -> tuple[dict, list[np.ndarray]]:
    """One generation on `rt` with every denoiser call's input digest and output velocity recorded."""
    cfg = SamplerConfig(steps=case.steps, guidance=defaults["guidance"], shift=defaults["shift"],
                        leap=LeapConfig.parse(case.lpl), tdtm_steps=case.tdtm_steps)
    times = timesteps(cfg.steps, cfg.shift, cfg.timesteps)
    calls: list[dict] = []
    outputs: list[np.ndarray] = []

    def recorder(name: str, run: Callable) -> Callable:
        def call(x, t, states, mask, guidance):
            v = np.ascontiguousarray(run(x, t, states, mask, guidance), dtype=np.float32)
            step = len(calls)
            calls.append({"step": step, "t": times[step], "t_float32": float(t[0]), "variant": name,
                          "input_sha256": digest(x), "output_offset": len(out), "output_sha256": digest(v)})
            out.extend(v.astype("<f4").tobytes())
            outputs.append(v)
            return v

        return call

    recording = VideoRuntime(rt.kind, rt.encode, {n: recorder(n, f) for n, f in rt.denoisers.items()}, rt.shape)
    gen = generate(recording, case.prompt, case.seed, cfg, case.spatial)
    entry = {
        "name": case.name, "prompt": case.prompt, "seed": str(case.seed),
        "settings": {"steps": cfg.steps, "guidance": cfg.guidance, "shift": cfg.shift, "lpl": case.lpl,
                     "lpl_similarity": cfg.leap.similarity.value, "timesteps": cfg.timesteps.value,
                     "tdtm_steps": cfg.tdtm_steps, "spatial": case.spatial},
        "shape": list(rt.shape), "noise_sha256": digest(latent_noise(rt.shape, case.seed)),
        "calls": calls, "leap_at": gen.result.leap_at, "merged_calls": gen.result.merged_calls,
        "similarities": gen.result.similarities,
        "final_latent_sha256": digest(gen.result.x), "frames_sha256": digest(frames_from_latent(gen.result.x)),
    }
    return entry, outputs


def build_contract(rt: VideoRuntime, tokenize: Callable, caption_len: int, defaults: dict) -> tuple[dict, bytes]:
    """contract.json's content and the replay bytes (every recorded velocity, back to back)."""
    replay_bytes = bytearray()
    replays, velocities = [], {}
    for case in REPLAYS:
        entry, outputs = _record(rt, case, defaults, replay_bytes)
        replays.append(entry)
        velocities[case.name] = outputs
    noise, latents = _noise_section(rt.shape)
    contract = {
        "contract_version": CONTRACT_VERSION,
        "digest": "sha256 (lowercase hex) of float32 little-endian bytes in C order",
        "noise": noise,
        "latent_noise": latents,
        "tokenizer": _tokenizer_section(tokenize, caption_len),
        "timesteps": _timesteps_section(defaults["shift"]),
        "lpl": _lpl_section(replays, velocities),
        "tdtm": _tdtm_section(),
        "replay_file": Path(REPLAY_FILE).name,
        "replay_file_bytes": len(replay_bytes),
        "replay_file_sha256": hashlib.sha256(replay_bytes).hexdigest(),
        "replay": replays,
    }
    return contract, bytes(replay_bytes)


def write_contract(folder: Path) -> list[str]:
    """Write the contract for the built-in video-dit-tiny into an export folder; returns the relative paths."""
    contract, replay = build_contract(eager_runtime(), lambda texts, n: [a.numpy() for a in tokenize(texts, n)],
                                      load_video_dit().cfg.caption_len, SAMPLER_DEFAULTS)
    (folder / CONTRACT_FILE).parent.mkdir(parents=True, exist_ok=True)
    (folder / REPLAY_FILE).write_bytes(replay)
    (folder / CONTRACT_FILE).write_text(json.dumps(contract, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    log.info("wrote %s (%d replay calls, %d bytes of velocities)", CONTRACT_FILE,
             sum(len(r["calls"]) for r in contract["replay"]), len(replay))
    return [CONTRACT_FILE, REPLAY_FILE]
