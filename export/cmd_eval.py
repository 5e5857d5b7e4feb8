"""`tomobile eval video|text`: measured speed and quality. `video` is here; `text` lives in
cmd_eval_text.py and is added to the same `eval` group."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def cmd_eval_video(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from tomobile.runtime.video import RuntimeKind, load_runtime
    from tomobile.runtime.video_eval import PROMPTS, SEEDS, default_settings, format_table, run_video_eval, save_grid

    from .cmd_generate import sampler_config

    base = sampler_config(args.steps, "off", 0, args.guidance, args.timesteps, args.lpl_similarity)
    settings = default_settings(base, with_spatial=not args.no_tome)
    prompts = PROMPTS[: args.prompts] if args.prompts else PROMPTS
    seeds = tuple(range(args.seeds)) if args.seeds else SEEDS
    rt = load_runtime(RuntimeKind(args.runtime), Path(args.artifacts) if args.artifacts else None)
    with tqdm(total=len(prompts) * len(seeds), desc="clips", unit="clip", disable=args.quiet) as bar:
        report = run_video_eval(rt, settings, prompts, seeds, on_clip=bar.update)
    table = format_table(report)
    print(f"runtime {report.runtime}, {len(prompts)} prompts x {len(seeds)} seeds, baseline {base.steps} steps, guidance {base.guidance}")
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_grid(report, out / "settings_grid.png")
    tmp = out / "eval_video.json.tmp"
    tmp.write_text(json.dumps({"runtime": report.runtime, "prompts": list(prompts), "seeds": list(seeds), "rows": report.rows()}, indent=2))
    tmp.replace(out / "eval_video.json")
    (out / "eval_video.md").write_text(table + "\n")
    print(f"wrote {out / 'settings_grid.png'}, {out / 'eval_video.json'}, {out / 'eval_video.md'}")
    return 0


def add_parser(sub) -> None:
    from tomobile.runtime.video import RuntimeKind

    from .cmd_generate import add_mode_args

    p = sub.add_parser("eval", help="measure speed and quality (video; text)")
    kinds = p.add_subparsers(dest="eval_kind", required=True, metavar="KIND")
    v = kinds.add_parser("video", help="LPL / TDTM / spatial ToMe settings of video-dit-tiny against the full baseline")
    v.add_argument("--runtime", choices=[k.value for k in RuntimeKind], default="onnxruntime")
    v.add_argument("--artifacts", metavar="DIR", help="folder from `tomobile export video-dit-tiny` (needed unless eager)")
    v.add_argument("--steps", type=int, default=30)
    v.add_argument("--guidance", type=float, default=4.0)
    v.add_argument("--prompts", type=int, default=0, help="use only the first N of the 12 fixed prompts")
    v.add_argument("--seeds", type=int, default=0, help="seeds 0..N-1 (default: seed 0 only)")
    v.add_argument("--no-tome", action="store_true", help="skip the spatial-ToMe settings")
    add_mode_args(v)
    v.add_argument("--out", default="tomobile-out/eval-video", metavar="DIR", help="table, JSON and picture go here")
    v.set_defaults(handler=cmd_eval_video)
    from .cmd_eval_text import add_text_parser

    add_text_parser(kinds)
