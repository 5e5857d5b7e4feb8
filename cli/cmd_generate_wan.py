"""`tomobile generate PROMPT --artifacts DIR` where DIR is a WanPipeline export: the whole pipeline
(text encoder, transformer with WanPipeline's guidance on the folder's scheduler, VAE decoder) on
ONNX Runtime, ExecuTorch, Core AI or eager PyTorch (the parts rebuilt from the source folder), from
`--latents FILE.npy` or seeded noise; TDTM for the first --tdtm-steps steps, LPL per --lpl; with
`--stream --memory-budget B` on a `--split blocks` export, part by part under B (runtime/wan_stream.py).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..graphs.errors import InputError
from ..runtime.flow_sampler import FlowSamplerConfig
from ..runtime.noise import latent_noise
from ..runtime.sampler import LeapConfig, SimilarityMode, parse_mode
from ..runtime.stream_video import format_steps
from ..runtime.streaming import StreamError, parse_bytes
from ..runtime.video import CLIP_SUFFIXES, RuntimeKind, check_clip_file, save_clip
from ..runtime.wan_artifacts import WanExport, load_latents, wan_export, wan_run
from ..runtime.wan_generate import wan_generate
from ..runtime.wan_stream import StreamSettings, format_loads
from .checks import check_output_file

# video-dit-tiny's options that a Wan export does not take (option attribute -> flag)
VIDEO_DIT_ONLY = {"tome": "--tome", "timesteps": "--timesteps", "tdtm_positions": "--tdtm-positions",
                  "tdtm_odd": "--tdtm-odd", "compare": "--compare"}
WAN_ONLY = {"latents": "--latents", "negative_prompt": "--negative-prompt"}


def refuse_wan_options(args: argparse.Namespace) -> None:
    """--latents and --negative-prompt on a video-dit run are a one-line error."""
    given = [flag for key, flag in WAN_ONLY.items() if getattr(args, key, None) is not None]
    if given:
        raise InputError(f"{' and '.join(given)} apply to a WanPipeline export (--artifacts DIR from `tomobile export "
                         "PIPELINE_DIR`), not to video-dit-tiny")


def wan_config(args: argparse.Namespace, export: WanExport) -> FlowSamplerConfig:
    """The run's sampler settings: --steps and --guidance default to the export's (WanPipeline's)."""
    similarity = parse_mode(SimilarityMode, args.lpl_similarity or SimilarityMode.ORIGINAL, "--lpl-similarity")
    try:
        leap = LeapConfig.parse(args.lpl, similarity)
    except InputError as err:
        raise InputError(f"--lpl: {err}") from None
    steps = args.steps if args.steps is not None else export.steps
    guidance = args.guidance if args.guidance is not None else export.guidance
    try:
        return FlowSamplerConfig(export.schedule(steps), guidance=guidance, leap=leap, tdtm_steps=args.tdtm_steps)
    except InputError as err:
        raise InputError(f"{err} (--steps, --lpl, --tdtm-steps)") from None


def cmd_generate_wan(args: argparse.Namespace) -> int:
    given = [flag for key, flag in VIDEO_DIT_ONLY.items() if getattr(args, key, None) not in (None, False)]
    if given:
        raise InputError(f"{', '.join(given)}: video-dit-tiny options; a WanPipeline export takes --steps, --guidance, "
                         "--negative-prompt, --latents or --seed, --tdtm-steps, --lpl, --stream --memory-budget")
    out = Path(args.out)
    check_output_file(out, "--out", CLIP_SUFFIXES)
    check_clip_file(out)
    export = wan_export(Path(args.artifacts))
    cfg = wan_config(args, export)
    latents = load_latents(Path(args.latents), export.latent_shape) if args.latents else \
        latent_noise(export.latent_shape, args.seed)
    run = wan_run(export, RuntimeKind(args.runtime), cfg.tdtm_steps > 0, stream_settings(args))
    start = time.perf_counter()
    clip = wan_generate(run, args.prompt, latents, cfg, negative_prompt=args.negative_prompt or "")
    seconds = time.perf_counter() - start
    save_clip(clip.frames[0], out)
    res, n, h, w = clip.result, *clip.frames.shape[1:4]
    per_call = 2 if cfg.guidance > 1.0 else 1
    leap = f"leap at step {res.leap_at}" if res.leap_at is not None else f"no leap (lpl {cfg.leap.mode.value})"
    print(f"wrote {out}  ({n} frames {h}x{w})")
    print(f"runtime {args.runtime}: {cfg.schedule.kind.value} scheduler, {res.calls} velocity evaluations "
          f"({res.calls * per_call} transformer calls, guidance {cfg.guidance:g}), {res.merged_calls} TDTM-merged, "
          f"{leap}, {seconds:.2f} s")
    if run.streamed is not None and args.stream:
        print(format_steps(run.streamed.streamer.stats, run.streamed.streamer.budget))
        print(format_loads(run.streamed.loads))
    return 0


def stream_settings(args: argparse.Namespace) -> StreamSettings | None:
    """--stream --memory-budget SIZE [--no-prefetch] -> StreamSettings; None without --stream."""
    if not args.stream:
        if args.memory_budget is not None or args.no_prefetch:
            raise StreamError("--memory-budget and --no-prefetch apply only with --stream")
        return None
    if args.memory_budget is None:
        raise StreamError("--stream needs --memory-budget SIZE (e.g. 64MB): the bytes its loaded parts may take")
    return StreamSettings(parse_bytes(args.memory_budget), not args.no_prefetch)
