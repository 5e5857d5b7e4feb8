"""`tomobile generate PROMPT --out clip.gif`: text-to-video with `video-dit-tiny`.

Runs eager PyTorch or exported artifacts (ONNX Runtime, ExecuTorch) through the same sampler;
prints denoiser calls, time, and which merges and leaps were used.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tomobile.runtime.sampler import LeapConfig, SamplerConfig
from tomobile.runtime.video import RuntimeKind


def sampler_config(steps: int, lpl: str, tdtm_steps: int, guidance: float) -> SamplerConfig:
    """CLI values -> SamplerConfig; raises ValueError with a one-line message on bad input."""
    from tomobile.graphs.video_zoo import SAMPLER_DEFAULTS

    return SamplerConfig(
        steps=steps,
        guidance=guidance,
        shift=SAMPLER_DEFAULTS["shift"],
        leap=LeapConfig.parse(lpl),
        tdtm_steps=min(tdtm_steps, steps),
    )


def add_sampler_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--steps", type=int, default=30, help="Euler steps (default: 30)")
    p.add_argument("--lpl", default="off", metavar="off|auto|N",
                   help="linear proportional leap: off, auto (On-device Sora: from step 14 of 30, leap once the velocity cosine similarity has not beaten its best by 1e-3 for 3 steps), or leap after N steps")
    p.add_argument("--tdtm-steps", type=int, default=0, metavar="K", help="use the TDTM-merged denoiser for the first K steps")
    p.add_argument("--tome", action="store_true", help="use the spatial-ToMe denoiser variants (ratio 0.5)")
    p.add_argument("--guidance", type=float, default=4.0, help="classifier-free guidance scale (default: 4.0)")
    p.add_argument("--runtime", choices=[k.value for k in RuntimeKind], default="eager", help="default: eager")
    p.add_argument("--artifacts", metavar="DIR", help="folder from `tomobile export video-dit-tiny` (onnxruntime, executorch)")
    p.add_argument("--stream", action="store_true", help="run the denoiser part by part from a `--split blocks` export "
                                                         "under --memory-budget, printing memory and load time per step")
    p.add_argument("--memory-budget", metavar="SIZE", help="with --stream: bytes the loaded parts may take, e.g. 64MB, 1GB")
    p.add_argument("--no-prefetch", action="store_true", help="with --stream: load each part on its turn, not in the background")


def cmd_generate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from tomobile.graphs.clips import parse_caption
    from tomobile.runtime.detect import detect
    from tomobile.runtime.video import generate, load_runtime, save_clip

    out = Path(args.out)
    if out.suffix.lower() not in (".gif", ".npy"):
        raise ValueError(f"--out must end in .gif or .npy, got {out.name!r}")
    cfg = sampler_config(args.steps, args.lpl, args.tdtm_steps, args.guidance)
    streamer = None
    if args.stream or args.memory_budget or args.no_prefetch:
        from tomobile.runtime.stream_video import stream_args

        rt, streamer = stream_args(args.stream, args.runtime, args.artifacts, args.memory_budget, not args.no_prefetch)
    else:
        rt = load_runtime(RuntimeKind(args.runtime), Path(args.artifacts) if args.artifacts else None)
    with tqdm(total=cfg.steps, desc="denoising", unit="step", disable=args.quiet) as bar:
        gen = generate(rt, args.prompt, args.seed, cfg, args.tome, on_step=bar.update)
    save_clip(gen.frames, out)
    res = gen.result
    leap = f"leap at step {res.leap_at} ({cfg.leap.mode.value})" if res.leap_at is not None else f"no leap (lpl {cfg.leap.mode.value})"
    print(f"wrote {out}  ({gen.frames.shape[0]} frames {gen.frames.shape[1]}x{gen.frames.shape[2]})")
    print(f"runtime {rt.kind.value}: {res.calls} denoiser calls ({res.merged_calls} TDTM-merged), {gen.seconds:.2f} s sampling")
    print(f"merges: TDTM for {res.merged_calls} calls, spatial ToMe {'on (ratio 0.5)' if args.tome else 'off'}; "
          f"variants used: {', '.join(gen.variants)}; {leap}")
    spec = parse_caption(args.prompt)
    if spec is not None:
        d = detect(gen.frames)
        print(f"detector: colour {d.colour}, shape {d.shape}, direction {d.direction} -> "
              f"{'follows the prompt' if d.compliance(spec)['all'] else 'does not fully follow the prompt'}")
    if streamer is not None:
        from tomobile.runtime.stream_video import format_steps

        print(format_steps(streamer.stats, streamer.budget))
    if args.compare:
        _compare_with_baseline(rt, args, cfg, gen)
    return 0


def _compare_with_baseline(rt, args: argparse.Namespace, cfg: SamplerConfig, gen) -> None:
    """Run the plain sampler (same seed, no leap, no merge) and print speed and quality against it."""
    from tqdm import tqdm

    from tomobile.runtime.sampler import LeapConfig
    from tomobile.runtime.video import generate
    from tomobile.runtime.video_eval import psnr, ssim

    base_cfg = SamplerConfig(steps=cfg.steps, guidance=cfg.guidance, shift=cfg.shift, leap=LeapConfig(), tdtm_steps=0)
    with tqdm(total=base_cfg.steps, desc="baseline", unit="step", disable=args.quiet) as bar:
        base = generate(rt, args.prompt, args.seed, base_cfg, False, on_step=bar.update)
    print(f"baseline ({base.result.calls} calls, no merge): {base.seconds:.2f} s -> speed-up {base.seconds / gen.seconds:.2f}x; "
          f"against it PSNR {psnr(base.frames, gen.frames):.1f} dB, SSIM {ssim(base.frames, gen.frames):.3f}")


def add_parser(sub) -> None:
    p = sub.add_parser("generate", help="text-to-video with video-dit-tiny (eager or exported artifacts)",
                       description="Generate a clip from PROMPT with the built-in video-dit-tiny model.")
    p.add_argument("prompt", metavar="PROMPT", help='e.g. "a red circle moving left"')
    p.add_argument("--out", required=True, metavar="FILE", help=".gif, or .npy (float32 [T, H, W, 3] in [0, 1])")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compare", action="store_true", help="also run the plain 30-step sampler and print speed-up, PSNR, SSIM")
    add_sampler_args(p)
    p.set_defaults(handler=cmd_generate)
