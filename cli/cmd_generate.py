"""`tomobile generate PROMPT --out clip.gif`: text-to-video with `video-dit-tiny`.

Runs eager PyTorch or exported artifacts (ONNX Runtime, ExecuTorch) through the same sampler;
prints denoiser calls, time, and which merges and leaps were used.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..graphs.errors import InputError
from ..runtime.sampler import LeapConfig, SamplerConfig, SimilarityMode, TimestepMode, parse_mode
from ..runtime.video import RuntimeKind, VideoRuntime
from .checks import finite_float, int_at_least, note


def sampler_config(steps: int, lpl: str, tdtm_steps: int, guidance: float, timesteps: str | None = None,
                   lpl_similarity: str | None = None) -> SamplerConfig:
    """CLI values -> SamplerConfig (None: the default mode); raises ValueError with a one-line message
    on bad input (a TDTM count above the steps or a leap at the last step is refused, not clamped)."""
    from ..graphs.video_zoo import SAMPLER_DEFAULTS

    return SamplerConfig(
        steps=steps,
        guidance=guidance,
        shift=SAMPLER_DEFAULTS["shift"],
        leap=LeapConfig.parse(lpl, lpl_similarity or SimilarityMode.ORIGINAL),
        tdtm_steps=tdtm_steps,
        timesteps=parse_mode(TimestepMode, timesteps or TimestepMode.DISCRETE, "--timesteps"),
    )


def add_tdtm_args(p: argparse.ArgumentParser, default: str) -> None:
    """TDTM modes; `default` says where an omitted one comes from."""
    p.add_argument("--tdtm-positions", metavar="original|midpoint",
                   help="temporal RoPE positions of TDTM-merged frames: original (On-device Sora: 0..T'-1) or "
                        f"midpoint (each pair's mean time, 2i + 0.5); default: {default}")
    p.add_argument("--tdtm-odd", metavar="original|keep",
                   help="TDTM with an odd frame count: original (On-device Sora: drop the last frame, fill it with "
                        f"the last pair's average) or keep (it is its own merged frame); default: {default}")


def tdtm_options(args: argparse.Namespace) -> dict[str, str]:
    """The TDTM modes given on the command line, checked; omitted ones are left out."""
    from ..graphs.tdtm import TdtmOdd, TdtmPositions

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
    p.add_argument("--steps", type=int_at_least(1), default=30, help="Euler steps (default: 30)")
    p.add_argument("--lpl", default="off", metavar="off|auto|N",
                   help="linear proportional leap: off, auto (On-device Sora: from step 14 of 30, leap once the "
                        "velocity cosine similarity has not beaten its best by 1e-3 for 3 steps), or leap after "
                        "N steps (1 <= N <= steps - 2)")
    p.add_argument("--tdtm-steps", type=int_at_least(0), default=0, metavar="K",
                   help="use the TDTM-merged denoiser for the first K steps (0 <= K <= steps)")
    p.add_argument("--tome", action="store_true", help="use the spatial-ToMe denoiser variants (ratio 0.5)")
    p.add_argument("--guidance", type=finite_float, default=4.0, help="classifier-free guidance scale (default: 4.0)")
    add_runtime_args(p, "eager")
    add_mode_args(p)
    p.add_argument("--stream", action="store_true", help="run the denoiser part by part from a `--split blocks` export "
                                                         "under --memory-budget, printing memory and load time per step "
                                                         "(--artifacts default: tomobile-out/video-dit-tiny)")
    p.add_argument("--memory-budget", metavar="SIZE", help="with --stream: bytes the loaded parts may take, e.g. 64MB, 1GB")
    p.add_argument("--no-prefetch", action="store_true", help="with --stream: load each part on its turn, not in the background")


def add_runtime_args(p: argparse.ArgumentParser, default: str, per_mode_set: bool = False) -> None:
    p.add_argument("--runtime", choices=[k.value for k in RuntimeKind], default=default,
                   help=f"eager runs the built-in model; the others need --artifacts (default: {default})")
    p.add_argument("--artifacts", metavar="DIR", action="append" if per_mode_set else "store",
                   help="folder from `tomobile export video-dit-tiny`, for --runtime onnxruntime or executorch"
                        + ("; with --mode-sets once per mode set, each set running on the folder exported with "
                           "its TDTM modes" if per_mode_set else ""))


def open_runtime(args: argparse.Namespace, variants: list[str]) -> VideoRuntime:
    """The runtime that --runtime, --artifacts and the TDTM modes name (see open_runtime_at)."""
    return open_runtime_at(RuntimeKind(args.runtime), args.artifacts, variants, tdtm_options(args))


def open_runtime_at(kind: RuntimeKind, artifacts: str | None, variants: list[str],
                    tdtm: dict[str, str]) -> VideoRuntime:
    """The runtime with `variants` loaded (so a missing or damaged one stops the command before any
    sampling). --artifacts with eager is refused, as is a TDTM mode the artifacts were not exported with."""
    from ..runtime.video import load_runtime, preload

    if kind is RuntimeKind.EAGER and artifacts:
        raise InputError("--artifacts applies to --runtime onnxruntime or executorch; eager runs the built-in model "
                         "(drop --artifacts or give --runtime)")
    rt = load_runtime(kind, Path(artifacts) if artifacts else None, tdtm)
    preload(rt, variants)
    return rt


def note_unknown_words(prompt: str) -> None:
    """One line on stderr when the prompt goes beyond what video-dit-tiny was trained on."""
    from ..graphs.clips import COLOURS, DIRECTIONS, SHAPES, parse_caption, unknown_words

    unknown = unknown_words(prompt)
    if unknown or parse_caption(prompt) is None:
        what = f"{', '.join(repr(w) for w in unknown)} unknown to it" if unknown else "this prompt names no full caption"
        note(f"video-dit-tiny knows only captions like 'a red circle moving left' (colours {'/'.join(COLOURS)}, "
             f"shapes {'/'.join(SHAPES)}, directions {'/'.join(DIRECTIONS)}); {what}, so the clip may follow none of it")


def cmd_generate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..graphs.clips import parse_caption
    from ..runtime.detect import detect
    from ..runtime.video import generate, needed_variants, save_clip, variant_name

    from .checks import check_output_file

    out = Path(args.out)
    check_output_file(out, "--out", (".gif", ".npy"))
    cfg = sampler_config(args.steps, args.lpl, args.tdtm_steps, args.guidance, args.timesteps, args.lpl_similarity)
    variants = needed_variants(cfg, args.tome) + ([variant_name(False, False)] if args.compare else [])
    streamer = None
    if args.stream or args.memory_budget or args.no_prefetch:
        from ..runtime.stream_video import stream_args
        from ..runtime.video import preload

        rt, streamer = stream_args(args.stream, args.runtime, args.artifacts, args.memory_budget, not args.no_prefetch,
                                   tdtm_options(args))
        preload(rt, variants)
    else:
        rt = open_runtime(args, variants)
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
    print(f"modes: timesteps {cfg.timesteps.value}, lpl similarity {cfg.leap.similarity.value}, "
          f"tdtm positions {rt.tdtm['tdtm_positions']}, tdtm odd frames {rt.tdtm['tdtm_odd']}")
    spec = parse_caption(args.prompt)
    if spec is not None:
        d = detect(gen.frames)
        print(f"detector: colour {d.colour}, shape {d.shape}, direction {d.direction} -> "
              f"{'follows the prompt' if d.compliance(spec)['all'] else 'does not fully follow the prompt'}")
    if streamer is not None:
        from ..runtime.stream_video import format_steps

        print(format_steps(streamer.stats, streamer.budget))
    if args.compare:
        _compare_with_baseline(rt, args, cfg, gen)
    return 0


def _compare_with_baseline(rt, args: argparse.Namespace, cfg: SamplerConfig, gen) -> None:
    """Run the plain sampler (same seed, no leap, no merge) and print speed and quality against it."""
    from tqdm import tqdm

    from ..runtime.sampler import LeapConfig
    from ..runtime.video import generate
    from ..runtime.video_eval import psnr, ssim

    base_cfg = SamplerConfig(steps=cfg.steps, guidance=cfg.guidance, shift=cfg.shift, leap=LeapConfig(), tdtm_steps=0,
                             timesteps=cfg.timesteps)
    with tqdm(total=base_cfg.steps, desc="baseline", unit="step", disable=args.quiet) as bar:
        base = generate(rt, args.prompt, args.seed, base_cfg, False, on_step=bar.update)
    print(f"baseline ({base.result.calls} calls, no merge): {base.seconds:.2f} s -> speed-up {base.seconds / gen.seconds:.2f}x; "
          f"against it PSNR {psnr(base.frames, gen.frames):.1f} dB, SSIM {ssim(base.frames, gen.frames):.3f}")


def add_parser(sub) -> None:
    p = sub.add_parser("generate", help="text-to-video with video-dit-tiny (eager or exported artifacts)",
                       description="Generate a clip from PROMPT with the built-in video-dit-tiny model.")
    p.add_argument("prompt", metavar="PROMPT", help='e.g. "a red circle moving left"')
    p.add_argument("--out", required=True, metavar="FILE", help=".gif, or .npy (float32 [T, H, W, 3] in [0, 1])")
    p.add_argument("--seed", type=int_at_least(0), default=0)
    p.add_argument("--compare", action="store_true",
                   help="also run the plain sampler (same --steps, no leap, no merge) and print speed-up, PSNR, SSIM")
    add_sampler_args(p)
    p.set_defaults(handler=cmd_generate)
