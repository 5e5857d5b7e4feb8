"""`tomobile eval video|text`: measured speed and quality. `video` is here; `text` lives in
cmd_eval_text.py and is added to the same `eval` group."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, replace
from pathlib import Path

from tqdm import tqdm

from ..graphs.errors import InputError
from ..graphs.models.wan_shapes import WEIGHTS
from ..runtime.video import RuntimeKind, needed_variants
from ..runtime.video_eval import (
    PROMPTS,
    SEEDS,
    VideoEvalReport,
    default_settings,
    format_table,
    mode_set,
    mode_set_folders,
    parse_mode_sets,
    run_video_eval,
    save_grid,
)
from ..runtime.wan_shapes_eval import (
    PROMPTS16,
    eager_wan_shapes,
    generate_clip,
    sampler,
    wan_shapes_settings,
    warm_up,
)
from .checks import MAX_STEPS, check_output_folder, finite_float, int_at_least
from .cmd_eval_text import add_text_parser
from .cmd_generate import add_mode_args, add_runtime_args, open_runtime_at, sampler_config, tdtm_options

VIDEO_DIT, WAN_SHAPES = "video-dit-tiny", "wan-shapes"
# options of video-dit-tiny's eval that wan-shapes has no use for (its modes are fixed, its one runtime eager)
_NOT_WAN = {"artifacts": "--artifacts", "mode_sets": "--mode-sets", "timesteps": "--timesteps",
            "lpl_similarity": "--lpl-similarity", "tdtm_positions": "--tdtm-positions", "tdtm_odd": "--tdtm-odd"}


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
    if args.model == WAN_SHAPES:
        return cmd_eval_wan_shapes(args)
    if args.weights is not None:
        raise InputError("--weights applies to --model wan-shapes; video-dit-tiny runs its built-in checkpoint")
    if args.guidance is None:
        args.guidance = 4.0
    sets, prompts, seeds = _video_plan(args)
    runtimes, sets, settings = _open_mode_sets(args, sets)
    base = settings[0].sampler
    with tqdm(total=len(prompts) * len(seeds), desc="clips", unit="clip", disable=args.quiet) as bar:
        report = run_video_eval(runtimes, settings, prompts, seeds, on_clip=bar.update)
    header = (f"runtime {report.runtime}, {len(prompts)} prompts x {len(seeds)} seeds, baseline {base.steps} steps, "
              f"guidance {base.guidance}\nmode sets: " + "; ".join(s.describe() for s in sets))
    write_eval_report(report, Path(args.out), header, {"mode_sets": [asdict(s) for s in sets]})
    return 0


def cmd_eval_wan_shapes(args: argparse.Namespace) -> int:
    """The same table for wan-shapes (eager): full, LPL, TDTM and LPL + TDTM on its 16 prompts."""
    given = [flag for key, flag in _NOT_WAN.items() if getattr(args, key)]
    if given or args.runtime != RuntimeKind.EAGER.value or args.no_tome:
        flag = given[0] if given else ("--no-tome" if args.no_tome else f"--runtime {args.runtime}")
        raise InputError(f"{flag} does not apply to --model wan-shapes, which runs eager with its fixed modes and "
                         "no spatial ToMe setting")
    if args.prompts > len(PROMPTS16):
        raise InputError(f"--prompts {args.prompts}: wan-shapes has {len(PROMPTS16)} prompts; give 1..{len(PROMPTS16)} "
                         "(or 0 for all)")
    check_output_folder(Path(args.out), "--out")
    rt = eager_wan_shapes(args.weights or WEIGHTS)
    base = sampler(args.steps, 5.0 if args.guidance is None else args.guidance)
    settings = wan_shapes_settings(base, with_tdtm=True)
    prompts = PROMPTS16[: args.prompts] if args.prompts else PROMPTS16
    seeds = tuple(range(args.seeds)) if args.seeds else SEEDS
    with tqdm(total=len(prompts) * len(seeds), desc="clips", unit="clip", disable=args.quiet) as bar:
        report = run_video_eval(rt, settings, prompts, seeds, on_clip=bar.update, clip=generate_clip, warm=warm_up)
    header = (f"wan-shapes, runtime {report.runtime}, {len(prompts)} prompts x {len(seeds)} seeds, baseline "
              f"{base.schedule.steps} UniPC steps, guidance {base.guidance}")
    write_eval_report(report, Path(args.out), header, {"model": WAN_SHAPES})
    return 0


def write_eval_report(report: VideoEvalReport, out: Path, header: str, extra: dict) -> None:
    """Print the header and the table; write the picture, the JSON (rows and `extra`) and the table to `out`."""
    table = format_table(report)
    print(header)
    print(table)
    out.mkdir(parents=True, exist_ok=True)
    save_grid(report, out / "settings_grid.png")
    tmp = out / "eval_video.json.tmp"
    tmp.write_text(json.dumps({"runtime": report.runtime, "prompts": list(report.prompts), "seeds": list(report.seeds),
                               **extra, "rows": report.rows()}, indent=2))
    tmp.replace(out / "eval_video.json")
    (out / "eval_video.md").write_text(table + "\n")
    print(f"wrote {out / 'settings_grid.png'}, {out / 'eval_video.json'}, {out / 'eval_video.md'}")


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="measure speed and quality (video; text)")
    kinds = p.add_subparsers(dest="eval_kind", required=True, metavar="KIND")
    v = kinds.add_parser("video", help="LPL / TDTM / spatial ToMe settings of video-dit-tiny (or wan-shapes) against the "
                                        "full baseline")
    v.add_argument("--model", choices=(VIDEO_DIT, WAN_SHAPES), default=VIDEO_DIT,
                   help="video-dit-tiny (default; every runtime, 12 prompts) or wan-shapes (diffusers' Wan transformer "
                        "trained on the same clips; eager, 16 prompts, UniPC)")
    v.add_argument("--weights", type=Path, metavar="FILE",
                   help="--model wan-shapes only: a checkpoint written by scripts/train_wan_shapes.py (default: the "
                        "shipped one)")
    add_runtime_args(v, "eager", per_mode_set=True)
    v.add_argument("--steps", type=int_at_least(3, MAX_STEPS), default=30,
                   help=f"baseline Euler steps, 3..{MAX_STEPS} (default: 30)")
    v.add_argument("--guidance", type=finite_float, help="default: 4.0 (video-dit-tiny), 5.0 (wan-shapes)")
    v.add_argument("--prompts", type=int_at_least(0), default=0, help="use only the first N of the fixed prompts "
                                                                     "(12, or 16 for wan-shapes; default 0: all)")
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
