"""Eager per-call CPU time of a diffusers video transformer with and without TDTM, side by side.

    python scripts/video_transformer_tdtm_ratio.py [--family wan|ltx] [--layers 4] [--size 256x256]
        [--frames 17] [--rounds 3] [--threads 1] [--json F]

The transformer is the family's published width (Wan 2.1 1.3B: 12 x 128, FFN 8960, text 4096 x 512;
LTX-Video: 32 x 64, text 4096 x 128) with `--layers` blocks and random seeded weights, at the
clip shape given; the plain and the TDTM transformer are the ones `tomobile export --merge tdtm`
writes (the same weights). Rounds alternate the two; each call is timed by `time.process_time`
(CPU time of the process, steadier than wall time on a shared machine at 1 thread). The ratio
plain / TDTM is the speed-up per call; the FLOP ratio counts matmuls (attention and linear layers)
at the two token counts.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from tomobile.graphs.models import ltx, wan
from tomobile.graphs.models.video_transformers import builtin_bundle
from tomobile.graphs.spec.config import MergeConfig

FAMILIES = {"wan": (wan.WAN, wan.WAN21_T2V_1_3B), "ltx": (ltx.LTX, ltx.LTX_VIDEO)}


def flops(dim: int, ffn: int, tokens: int, merged: int, text: int, layers: int) -> tuple[float, float]:
    """Matmul FLOPs per call (blocks only) at full length and with TDTM (attention at `merged` tokens)."""
    def per_block(q: int) -> float:
        self_attn = 2 * q * dim * dim * 4 + 2 * 2 * q * q * dim
        cross = 2 * q * dim * dim * 2 + 2 * text * dim * dim * 2 + 2 * 2 * q * text * dim
        return self_attn + cross + 2 * 2 * tokens * dim * ffn

    return per_block(tokens) * layers, per_block(merged) * layers


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--family", choices=FAMILIES, default="wan")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--size", default=None)
    p.add_argument("--frames", type=int, default=None)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    family, arch = FAMILIES[args.family]
    arch = {**arch, "num_layers": args.layers}
    bundle = builtin_bundle(f"{args.family}-{args.layers}", family, arch, MergeConfig.parse("tdtm"), args.size,
                            args.frames, None)
    parts = {name: bundle.parts[name] for name in ("transformer", "transformer_tdtm")}
    inputs = parts["transformer"].example_inputs()
    times: dict[str, list[float]] = {name: [] for name in parts}
    with torch.no_grad():
        for part in parts.values():
            part(*inputs)  # warm-up
        for _ in range(args.rounds):
            for name, part in parts.items():
                start = time.process_time()
                part(*inputs)
                times[name].append(time.process_time() - start)
    merge = bundle.manifest["merge"]
    t = bundle.parts["transformer"].transformer.config
    dim = t.num_attention_heads * t.attention_head_dim
    ffn = t.get("ffn_dim") or 4 * dim
    full, merged = flops(dim, ffn, merge["tokens"], merge["merged_tokens"], inputs[2].shape[1], args.layers)
    result = {"family": args.family, "layers": args.layers, "threads": args.threads, **bundle.manifest["pipeline"],
              "merged_tokens": merge["merged_tokens"],
              "plain_s": statistics.median(times["transformer"]), "tdtm_s": statistics.median(times["transformer_tdtm"]),
              "flop_ratio": full / merged}
    result["ratio"] = result["plain_s"] / result["tdtm_s"]
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
