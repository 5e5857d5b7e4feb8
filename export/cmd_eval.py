"""`tomobile eval video|text`: measured speed and quality. `video` is here; `text` lives in
cmd_eval_text.py and is added to the same `eval` group."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path


def cmd_eval_video(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from tomobile.runtime.video import RuntimeKind
    from tomobile.runtime.video_eval import PROMPTS, SEEDS, format_table, run_video_eval, save_grid

    prompts = PROMPTS[: args.prompts] if args.prompts else PROMPTS
    seeds = tuple(range(args.seeds)) if args.seeds else SEEDS
    runtimes, sets, settings = _mode_set_settings(args, RuntimeKind(args.runtime))
    steps = settings[0].sampler
    with tqdm(total=len(prompts) * len(seeds), desc="clips", unit="clip", disable=args.quiet) as bar:
        report = run_video_eval(runtimes, settings, prompts, seeds, on_clip=bar.update)
    table = format_table(report)
    print(f"runtime {report.runtime}, {len(prompts)} prompts x {len(seeds)} seeds, baseline {steps.steps} steps, guidance {steps.guidance}")
    print("mode sets: " + "; ".join(s.describe() for s in sets))
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_grid(report, out / "settings_grid.png")
    tmp = out / "eval_video.json.tmp"
    tmp.write_text(json.dumps({"runtime": report.runtime, "prompts": list(prompts), "seeds": list(seeds),
                               "mode_sets": [asdict(s) for s in sets], "rows": report.rows()}, indent=2))
    tmp.replace(out / "eval_video.json")
    (out / "eval_video.md").write_text(table + "\n")
    print(f"wrote {out / 'settings_grid.png'}, {out / 'eval_video.json'}, {out / 'eval_video.md'}")
    return 0


def _mode_set_settings(args: argparse.Namespace, kind):
    """(runtimes by mode set, mode sets, settings): the --mode-sets, or one set from the mode options."""
    from tomobile.runtime.video import load_runtime
    from tomobile.runtime.video_eval import default_settings, mode_set, mode_set_runtimes, parse_mode_sets

    from .cmd_generate import sampler_config, tdtm_options

    artifacts = [Path(a) for a in args.artifacts or []]
    if args.mode_sets is None:
        if len(artifacts) > 1:
            raise ValueError("more than one --artifacts needs --mode-sets (one folder per mode set)")
        rt = load_runtime(kind, artifacts[0] if artifacts else None, tdtm_options(args))
        base = sampler_config(args.steps, "off", 0, args.guidance, args.timesteps, args.lpl_similarity)
        sets = [mode_set(base.timesteps.value, base.leap.similarity.value, rt.tdtm)]
        return {sets[0].name: rt}, sets, default_settings(base, not args.no_tome, sets[0].name)
    given = [f for f in ("timesteps", "lpl_similarity", "tdtm_positions", "tdtm_odd") if getattr(args, f) is not None]
    if given:
        raise ValueError(f"--mode-sets sets every mode; drop --{given[0].replace('_', '-')}")
    sets = parse_mode_sets(args.mode_sets)
    runtimes = mode_set_runtimes(kind, artifacts, sets)
    settings = []
    for s in sets:
        base = sampler_config(args.steps, "off", 0, args.guidance, s.timesteps, s.lpl_similarity)
        settings += default_settings(base, not args.no_tome, s.name)
    return runtimes, sets, settings


def add_parser(sub) -> None:
    from tomobile.runtime.video import RuntimeKind

    from .cmd_generate import add_mode_args

    p = sub.add_parser("eval", help="measure speed and quality (video; text)")
    kinds = p.add_subparsers(dest="eval_kind", required=True, metavar="KIND")
    v = kinds.add_parser("video", help="LPL / TDTM / spatial ToMe settings of video-dit-tiny against the full baseline")
    v.add_argument("--runtime", choices=[k.value for k in RuntimeKind], default="onnxruntime")
    v.add_argument("--artifacts", metavar="DIR", action="append",
                   help="folder from `tomobile export video-dit-tiny` (needed unless eager); with --mode-sets, "
                        "once per mode set: each set runs on the folder exported with its TDTM modes")
    v.add_argument("--steps", type=int, default=30)
    v.add_argument("--guidance", type=float, default=4.0)
    v.add_argument("--prompts", type=int, default=0, help="use only the first N of the 12 fixed prompts")
    v.add_argument("--seeds", type=int, default=0, help="seeds 0..N-1 (default: seed 0 only)")
    v.add_argument("--no-tome", action="store_true", help="skip the spatial-ToMe settings")
    add_mode_args(v)
    v.add_argument("--mode-sets", metavar="LIST",
                   help="run every setting under each named mode set, side by side in one run: original (discrete, "
                        "original, original, original) and/or alternative (continuous, full, midpoint, keep), for "
                        "--timesteps, --lpl-similarity, --tdtm-positions, --tdtm-odd; e.g. original,alternative")
    v.add_argument("--out", default="tomobile-out/eval-video", metavar="DIR", help="table, JSON and picture go here")
    v.set_defaults(handler=cmd_eval_video)
    from .cmd_eval_text import add_text_parser

    add_text_parser(kinds)
