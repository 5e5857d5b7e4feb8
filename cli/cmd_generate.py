"""`tomobile generate PROMPT --out clip.gif`: text-to-video with `video-dit-tiny`, or with an
exported diffusers WanPipeline (`--artifacts DIR` from `tomobile export PIPELINE_DIR`:
cli/cmd_generate_wan.py).

Runs eager PyTorch or exported artifacts (ONNX Runtime, ExecuTorch) through the same sampler;
prints denoiser calls, time, and which merges and leaps were used.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from ..graphs.errors import InputError
from ..graphs.methods.tdtm import TdtmOdd, TdtmPositions
from ..graphs.models.clips import COLOURS, DIRECTIONS, SHAPES, parse_caption, unknown_words
from ..graphs.models.video_zoo import MODEL_NAME, SAMPLER_DEFAULTS
from ..runtime.detect import detect
from ..runtime.manifest import DEFAULT_OUT
from ..runtime.sampler import LeapConfig, LeapMode, SamplerConfig, SimilarityMode, TimestepMode, parse_mode
from ..runtime.stream_video import check_text_encoder, format_steps, streamed_runtime
from ..runtime.streaming import BlockStreamer, StreamError
from ..runtime.video import (
    CLIP_SUFFIXES,
    RuntimeKind,
    VideoRuntime,
    check_clip_file,
    check_prompt,
    generate,
    load_runtime,
    needed_variants,
    preload,
    save_clip,
    variant_name,
)
from ..runtime.video_eval import clip_psnr, ssim
from ..runtime.wan_artifacts import is_wan_export
from ..runtime.wan_stream import StreamSettings
from .checks import MAX_SEED, MAX_STEPS, check_output_file, finite_float, int_at_least, note
from .cmd_generate_wan import cmd_generate_wan, refuse_wan_options, stream_settings

STEPS, GUIDANCE = 30, 4.0  # video-dit-tiny's defaults (a Wan export has its own)


def sampler_config(steps: int, lpl: str, tdtm_steps: int, guidance: float, timesteps: str | None = None,
                   lpl_similarity: str | None = None) -> SamplerConfig:
    """CLI values -> SamplerConfig (None: the default mode); raises ValueError with a one-line message
    on bad input (a TDTM count above the steps or a leap at the last step is refused, not clamped)."""
    similarity = parse_mode(SimilarityMode, lpl_similarity or SimilarityMode.ORIGINAL, "--lpl-similarity")
    try:
        leap = LeapConfig.parse(lpl, similarity)
    except InputError as err:
        raise InputError(f"--lpl: {err}") from None
    try:
        return SamplerConfig(steps=steps, guidance=guidance, shift=SAMPLER_DEFAULTS["shift"], leap=leap,
                             tdtm_steps=tdtm_steps,
                             timesteps=parse_mode(TimestepMode, timesteps or TimestepMode.DISCRETE, "--timesteps"))
    except InputError as err:  # the library's terms; the options they come from
        raise InputError(f"{err} (--steps, --lpl, --tdtm-steps)") from None


def add_tdtm_args(p: argparse.ArgumentParser, default: str) -> None:
    """TDTM modes; `default` says where an omitted one comes from."""
    p.add_argument("--tdtm-positions", metavar="original|midpoint",
                   help="temporal RoPE positions of TDTM-merged frames: original (On-device Sora: 0..T'-1) or "
                        f"midpoint (each pair's mean time, 2i + 0.5); default: {default}")
    p.add_argument("--tdtm-odd", metavar="original|keep|first",
                   help="TDTM with an odd frame count: original (On-device Sora: drop the last frame, fill it with "
                        "the last pair's average), keep (the last frame is its own merged frame) or first (the first "
                        f"frame alone, the rest paired: what a causal video VAE's latents ask for); default: {default}")


def tdtm_options(args: argparse.Namespace) -> dict[str, str]:
    """The TDTM modes given on the command line, checked; omitted ones are left out."""
    given = {"tdtm_positions": (TdtmPositions, args.tdtm_positions), "tdtm_odd": (TdtmOdd, args.tdtm_odd)}
    return {key: parse_mode(enum, value, "--" + key.replace("_", "-")).value
            for key, (enum, value) in given.items() if value is not None}


def add_mode_args(p: argparse.ArgumentParser) -> None:
    """Sampler modes that follow the original code by default (README: Differences from the original code)."""
    p.add_argument("--timesteps", metavar="discrete|continuous",
                   help="discrete: Open-Sora's RFLOW times, round((1 - i/N) * 1000) / 1000 before the shift "
                        "(default); continuous: 1 - i/N")
    p.add_argument("--lpl-similarity", metavar="original|full",
                   help="LPL auto's similarity of consecutive velocities: original (On-device Sora: row cosines "
                        "of batch 0, channel 0, frame 0, averaged; default) or full (one cosine over the whole velocity)")
    add_tdtm_args(p, "the checkpoint's recorded setting (eager) or the one the --artifacts were exported with; "
                     "a different one with --artifacts is an error")


def add_sampler_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--steps", type=int_at_least(1, MAX_STEPS),
                   help=f"sampling steps, 1..{MAX_STEPS} (default: {STEPS}; a WanPipeline export: its own, 50)")
    p.add_argument("--lpl", default="off", metavar="off|auto|N",
                   help="linear proportional leap: off, auto (On-device Sora: from step 14 of 30, leap once the "
                        "velocity cosine similarity has not beaten its best by 1e-3 for 3 steps), or leap after "
                        "N steps (1 <= N <= steps - 2)")
    p.add_argument("--tdtm-steps", type=int_at_least(0), default=0, metavar="K",
                   help="use the TDTM-merged denoiser for the first K steps (0 <= K <= steps)")
    p.add_argument("--tome", action="store_true", help="use the spatial-ToMe denoiser variants (ratio 0.5)")
    p.add_argument("--guidance", type=finite_float,
                   help=f"classifier-free guidance scale (default: {GUIDANCE}; a WanPipeline export: its own, 5.0)")
    p.add_argument("--negative-prompt", metavar="TEXT",
                   help="a WanPipeline export: the prompt guidance steers away from (default: \"\", as WanPipeline)")
    p.add_argument("--latents", metavar="FILE.npy",
                   help="a WanPipeline export: start from these latents (float32, the export's latent shape "
                        "(1, z, F, h, w), as WanPipeline's latents=) instead of --seed's noise")
    add_runtime_args(p, "eager")
    add_mode_args(p)
    p.add_argument("--stream", action="store_true", help="run the denoiser part by part from a `--split blocks` export "
                                                         "under --memory-budget, printing memory and load time per step "
                                                         "(--artifacts default: tomobile-out/video-dit-tiny)")
    p.add_argument("--memory-budget", metavar="SIZE", help="with --stream: bytes the loaded parts may take, e.g. 64MB, 1GB")
    p.add_argument("--no-prefetch", action="store_true", help="with --stream: load each part on its turn, not in the background")


def add_runtime_args(p: argparse.ArgumentParser, default: str, per_mode_set: bool = False) -> None:
    p.add_argument("--runtime", choices=[k.value for k in RuntimeKind], default=default,
                   help="eager runs the built-in model (with a WanPipeline export's --artifacts: its parts in PyTorch, "
                        f"rebuilt from the pipeline folder it was exported from); the others need --artifacts "
                        f"(default: {default})")
    p.add_argument("--artifacts", metavar="DIR", action="append" if per_mode_set else "store",
                   help="folder from `tomobile export video-dit-tiny` or from `tomobile export PIPELINE_DIR` of a "
                        "diffusers WanPipeline, for --runtime onnxruntime, executorch or coreai"
                        + ("; with --mode-sets once per mode set, each set running on the folder exported with "
                           "its TDTM modes" if per_mode_set else ""))


def open_runtime(args: argparse.Namespace, variants: list[str]) -> VideoRuntime:
    """The runtime that --runtime, --artifacts and the TDTM modes name (see open_runtime_at)."""
    return open_runtime_at(RuntimeKind(args.runtime), args.artifacts, variants, tdtm_options(args))


def open_runtime_at(kind: RuntimeKind, artifacts: str | None, variants: list[str],
                    tdtm: dict[str, str]) -> VideoRuntime:
    """The runtime with `variants` loaded (so a missing or damaged one stops the command before any
    sampling). --artifacts with eager is refused, as is a TDTM mode the artifacts were not exported with."""
    if kind is RuntimeKind.EAGER and artifacts:
        raise InputError("--artifacts applies to --runtime onnxruntime, executorch or coreai; eager runs the built-in model "
                         "(drop --artifacts or give --runtime)")
    rt = load_runtime(kind, Path(artifacts) if artifacts else None, tdtm)
    preload(rt, variants)
    return rt


def open_streamed(args: argparse.Namespace, settings: StreamSettings,
                  variants: list[str] | None = None) -> tuple[VideoRuntime, BlockStreamer]:
    """`generate --stream` (its checked `settings`) -> streamed runtime; StreamError (one line) on a bad combination."""
    folder = Path(args.artifacts) if args.artifacts else DEFAULT_OUT / MODEL_NAME
    if not folder.is_dir():
        raise StreamError(f"no export at {folder}; run `tomobile export {MODEL_NAME} --split blocks --out {folder}` "
                          "or give --artifacts DIR")
    if RuntimeKind(args.runtime) is RuntimeKind.EAGER:
        raise StreamError("--stream runs exported parts: use --runtime onnxruntime, executorch or coreai, not eager")
    opened = streamed_runtime(RuntimeKind(args.runtime), folder, settings.budget, settings.prefetch,
                              tdtm=tdtm_options(args), variants=variants)
    check_text_encoder(folder, RuntimeKind(args.runtime))  # before the prompt is encoded or any part loaded
    return opened


def unused_modes(args: argparse.Namespace, cfg: SamplerConfig, frames: int) -> dict[str, str]:
    """Mode options given that this run cannot use -> why (issue 18: they were reported as in force)."""
    unused = {}
    if args.lpl_similarity is not None and cfg.leap.mode is not LeapMode.AUTO:
        unused["lpl_similarity"] = f"--lpl-similarity needs --lpl auto (--lpl is {cfg.leap.mode.value})"
    for key in ("tdtm_positions", "tdtm_odd"):
        if getattr(args, key) is not None and cfg.tdtm_steps == 0:
            unused[key] = f"--{key.replace('_', '-')} needs --tdtm-steps above 0"
    if args.tdtm_odd is not None and "tdtm_odd" not in unused and frames % 2 == 0:
        unused["tdtm_odd"] = f"--tdtm-odd applies to an odd frame count; this model makes {frames} frames"
    return unused


def note_unknown_words(prompt: str) -> None:
    """One line on stderr when the prompt goes beyond what video-dit-tiny was trained on."""
    unknown = unknown_words(prompt)
    if unknown or parse_caption(prompt) is None:
        what = f"{', '.join(repr(w) for w in unknown)} unknown to it" if unknown else "this prompt names no full caption"
        note(f"video-dit-tiny knows only captions like 'a red circle moving left' (colours {'/'.join(COLOURS)}, "
             f"shapes {'/'.join(SHAPES)}, directions {'/'.join(DIRECTIONS)}); {what}, so the clip may follow none of it")


def cmd_generate(args: argparse.Namespace) -> int:
    check_prompt(args.prompt)
    if args.artifacts and is_wan_export(Path(args.artifacts)):
        return cmd_generate_wan(args)
    refuse_wan_options(args)
    out = Path(args.out)
    check_output_file(out, "--out", CLIP_SUFFIXES)
    check_clip_file(out)
    cfg = sampler_config(STEPS if args.steps is None else args.steps, args.lpl, args.tdtm_steps,
                         GUIDANCE if args.guidance is None else args.guidance, args.timesteps, args.lpl_similarity)
    variants = needed_variants(cfg, args.tome) + ([variant_name(False, False)] if args.compare else [])
    streamer = None
    settings = stream_settings(args)
    if settings is not None:
        rt, streamer = open_streamed(args, settings, variants)
        preload(rt, variants)
    else:
        rt = open_runtime(args, variants)
    unused = unused_modes(args, cfg, rt.shape[2])
    if unused:
        note("no effect in this run: " + "; ".join(unused.values()))
    note_unknown_words(args.prompt)
    with tqdm(total=cfg.steps, desc="denoising", unit="step", disable=args.quiet) as bar:
        gen = generate(rt, args.prompt, args.seed, cfg, args.tome, on_step=bar.update)
    save_clip(gen.frames, out)
    res = gen.result
    leap = f"leap at step {res.leap_at} ({cfg.leap.mode.value})" if res.leap_at is not None else f"no leap (lpl {cfg.leap.mode.value})"
    print(f"wrote {out}  ({gen.frames.shape[0]} frames {gen.frames.shape[1]}x{gen.frames.shape[2]})")
    print(f"runtime {rt.kind.value}: {res.calls} denoiser calls ({res.merged_calls} TDTM-merged), {gen.seconds:.2f} s sampling")
    print(f"merges: TDTM for {res.merged_calls} calls, spatial ToMe {'on (ratio 0.5)' if args.tome else 'off'}; "
          f"variants used: {', '.join(gen.variants)}; {leap}")
    used = {"lpl_similarity": cfg.leap.similarity.value, "tdtm_positions": "-", "tdtm_odd": "-", **rt.tdtm}
    used.update({key: "not used" for key in unused})
    print(f"modes: timesteps {cfg.timesteps.value}, lpl similarity {used['lpl_similarity']}, "
          f"tdtm positions {used['tdtm_positions']}, tdtm odd frames {used['tdtm_odd']}")
    spec = parse_caption(args.prompt)
    if spec is not None:
        d = detect(gen.frames)
        print(f"detector: colour {d.colour}, shape {d.shape}, direction {d.direction} -> "
              f"{'follows the prompt' if d.compliance(spec)['all'] else 'does not fully follow the prompt'}")
    if streamer is not None:
        print(format_steps(streamer.stats, streamer.budget))
    if args.compare:
        _compare_with_baseline(rt, args, cfg, gen)
    return 0


def _compare_with_baseline(rt, args: argparse.Namespace, cfg: SamplerConfig, gen) -> None:
    """Run the plain sampler (same seed, no leap, no merge) and print speed and quality against it."""
    base_cfg = SamplerConfig(steps=cfg.steps, guidance=cfg.guidance, shift=cfg.shift, leap=LeapConfig(), tdtm_steps=0,
                             timesteps=cfg.timesteps)
    with tqdm(total=base_cfg.steps, desc="baseline", unit="step", disable=args.quiet) as bar:
        base = generate(rt, args.prompt, args.seed, base_cfg, False, on_step=bar.update)
    print(f"baseline ({base.result.calls} calls, no merge): {base.seconds:.2f} s -> speed-up {base.seconds / gen.seconds:.2f}x; "
          f"against it PSNR {clip_psnr(base.frames, gen.frames):.1f} dB, SSIM {ssim(base.frames, gen.frames):.3f}")


def add_parser(sub) -> None:
    p = sub.add_parser("generate", help="text-to-video with video-dit-tiny (eager or exported artifacts) or an "
                                        "exported diffusers WanPipeline",
                       description="Generate a clip from PROMPT with the built-in video-dit-tiny model, or with a "
                                   "WanPipeline exported by `tomobile export PIPELINE_DIR` (--artifacts DIR).")
    p.add_argument("prompt", metavar="PROMPT", help='e.g. "a red circle moving left"')
    p.add_argument("--out", required=True, metavar="FILE",
                   help=".gif, .mp4 (H.264; needs imageio-ffmpeg, the video extra), or .npy (float32 [T, H, W, 3] in "
                        "[0, 1], as diffusers' output_type=\"np\")")
    p.add_argument("--seed", type=int_at_least(0, MAX_SEED), default=0,
                   help="noise seed, 0..2^64-1 (the noise generator's uint64 state; default: 0)")
    p.add_argument("--compare", action="store_true",
                   help="also run the plain sampler (same --steps, no leap, no merge) and print speed-up, PSNR, SSIM")
    add_sampler_args(p)
    p.set_defaults(handler=cmd_generate)
