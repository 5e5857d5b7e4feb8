"""Evaluate a `wan-shapes` checkpoint: the `tomobile eval video` table on 16 prompts (eager PyTorch).

Every setting (runtime/wan_shapes_eval.py) generates every prompt from the same noise per seed,
interleaved clip by clip; the table gives denoiser calls, time against the full run, what the
analytic detector sees (colour, shape, direction, all three) and PSNR / SSIM against the full clip.

    .venv/bin/python scripts/eval_wan_shapes.py --weights graphs/models/weights/wan_shapes.safetensors --out OUT.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from tomobile.graphs.models.wan_shapes import WEIGHTS
from tomobile.runtime.video_eval import format_table, run_video_eval
from tomobile.runtime.wan_shapes_eval import (
    PROMPTS16,
    eager_wan_shapes,
    generate_clip,
    sampler,
    wan_shapes_settings,
    warm_up,
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", type=Path, default=WEIGHTS)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--guidance", type=float, default=5.0)
    ap.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 per prompt")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rt = eager_wan_shapes(args.weights)
    settings = wan_shapes_settings(sampler(args.steps, args.guidance), with_tdtm="denoiser_tdtm" in rt.denoisers)
    start_cpu, start = time.process_time(), time.time()
    report = run_video_eval(rt, settings, PROMPTS16, tuple(range(args.seeds)), clip=generate_clip, warm=warm_up)
    print(format_table(report))
    clips = len(PROMPTS16) * args.seeds
    for s in report.stats:
        print(f"{s.setting.name}: all three {sum(c['all'] for c in s.compliance)} of {clips} clips")
    print(f"# {args.weights}, {args.steps} steps, guidance {args.guidance}, {args.threads} thread(s): "
          f"cpu {time.process_time() - start_cpu:.1f}s, wall {time.time() - start:.1f}s")
    if args.out is not None:
        args.out.write_text(json.dumps({"weights": str(args.weights), "steps": args.steps, "rows": report.rows()}, indent=1))


if __name__ == "__main__":
    main()
