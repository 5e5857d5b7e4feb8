"""`tomobile eval video|text`: measured speed and quality. `video` is here; `text` lives in
cmd_eval_text.py and is added to the same `eval` group."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, replace
from pathlib import Path

from tqdm import tqdm

from ..graphs.errors import InputError
from ..runtime.video import RuntimeKind, needed_variants
from ..runtime.video_eval import (
    PROMPTS,
    SEEDS,
    default_settings,
    format_table,
    mode_set,
    mode_set_folders,
    parse_mode_sets,
    run_video_eval,
    save_grid,
)
from .checks import MAX_STEPS, check_output_folder, finite_float, int_at_least
from .cmd_eval_text import add_text_parser
from .cmd_generate import add_mode_args, add_runtime_args, open_runtime_at, sampler_config, tdtm_options


def _video_plan(args: argparse.Namespace):
    """Mode sets (None: one set from the mode options), prompts and seeds, all checked before any clip is made."""
    if args.prompts > len(PROMPTS):
        raise InputError(f"--prompts {args.prompts}: there are {len(PROMPTS)} prompts; give 1..{len(PROMPTS)} "
                         "(or 0 for all)")
    check_output_folder(Path(args.out), "--out")
    sets = None
    if args.mode_sets is not None:
        given = [f for f in ("timesteps", "lpl_similarity", "tdtm_positions", "tdtm_odd") if getattr(args, f) is not None]
        if given:
            raise InputError(f"--mode-sets sets every mode; drop --{given[0].replace('_', '-')}")
        sets = parse_mode_sets(args.mode_sets)
    elif len(args.artifacts or []) > 1:
        raise InputError("more than one --artifacts needs --mode-sets (one export folder per mode set)")
    prompts = PROMPTS[: args.prompts] if args.prompts else PROMPTS
    seeds = tuple(range(args.seeds)) if args.seeds else SEEDS
    return sets, prompts, seeds


def _open_mode_sets(args: argparse.Namespace, sets):
    """(runtime per mode set, the mode sets, every setting of every set). Without --mode-sets, one
    set from the mode options, named after the runtime's TDTM modes."""
    kind, artifacts = RuntimeKind(args.runtime), args.artifacts or []

    def variants(settings) -> list[str]:
        return [v for s in settings for v in needed_variants(s.sampler, s.spatial)]

    if sets is None:
        base = sampler_config(args.steps, "off", 0, args.guidance, args.timesteps, args.lpl_similarity)
        settings = default_settings(base, with_spatial=not args.no_tome)
        rt = open_runtime_at(kind, artifacts[0] if artifacts else None, variants(settings), tdtm_options(args))
        one = mode_set(base.timesteps.value, base.leap.similarity.value, rt.tdtm)
        return {one.name: rt}, [one], [replace(s, modes=one.name) for s in settings]
    folders = mode_set_folders(kind, artifacts, sets)
    runtimes, settings = {}, []
    for s in sets:
        base = sampler_config(args.steps, "off", 0, args.guidance, s.timesteps, s.lpl_similarity)
        mine = default_settings(base, not args.no_tome, s.name)
        runtimes[s.name] = open_runtime_at(kind, folders[s.name], variants(mine), s.tdtm)
        settings += mine
    return runtimes, sets, settings


def cmd_eval_video(args: argparse.Namespace) -> int:
    sets, prompts, seeds = _video_plan(args)
    runtimes, sets, settings = _open_mode_sets(args, sets)
    base = settings[0].sampler
    with tqdm(total=len(prompts) * len(seeds), desc="clips", unit="clip", disable=args.quiet) as bar:
        report = run_video_eval(runtimes, settings, prompts, seeds, on_clip=bar.update)
    table = format_table(report)
    print(f"runtime {report.runtime}, {len(prompts)} prompts x {len(seeds)} seeds, baseline {base.steps} steps, guidance {base.guidance}")
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


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="measure speed and quality (video; text)")
    kinds = p.add_subparsers(dest="eval_kind", required=True, metavar="KIND")
    v = kinds.add_parser("video", help="LPL / TDTM / spatial ToMe settings of video-dit-tiny against the full baseline")
    add_runtime_args(v, "eager", per_mode_set=True)
    v.add_argument("--steps", type=int_at_least(3, MAX_STEPS), default=30,
                   help=f"baseline Euler steps, 3..{MAX_STEPS} (default: 30)")
    v.add_argument("--guidance", type=finite_float, default=4.0, help="default: 4.0")
    v.add_argument("--prompts", type=int_at_least(0), default=0, help="use only the first N of the 12 fixed prompts "
                                                                     "(default 0: all)")
    v.add_argument("--seeds", type=int_at_least(0), default=0, help="seeds 0..N-1 (default: seed 0 only)")
    v.add_argument("--no-tome", action="store_true", help="skip the spatial-ToMe settings")
    add_mode_args(v)
    v.add_argument("--mode-sets", metavar="LIST",
                   help="run every setting under each named mode set, side by side in one run: original (discrete, "
                        "original, original, original) and/or alternative (continuous, full, midpoint, keep), for "
                        "--timesteps, --lpl-similarity, --tdtm-positions, --tdtm-odd; e.g. original,alternative")
    v.add_argument("--out", default="tomobile-out/eval-video", metavar="DIR", help="table, JSON and picture go here")
    v.set_defaults(handler=cmd_eval_video)

    add_text_parser(kinds)
