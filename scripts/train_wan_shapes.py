"""Train `wan-shapes` (diffusers' WanTransformer3DModel, small config) on the moving-shapes clips.

Flow matching as diffusers' training scripts train Wan and SD3: u ~ logit-normal (sigmoid of
N(0, 1)), index = int(1000 u) into a FlowMatchEulerDiscreteScheduler's shifted sigmas and
timesteps, x_t = (1 - sigma) x0 + sigma noise, loss = mean((v - (noise - x0))^2) with no
weighting. A share of the samples (`--high-sigma`) draws sigma ~ U(0.85, 1) instead, where only
the caption can place the shape (video-dit-tiny's recipe). 10% of captions become the empty
prompt "" (WanPipeline's default negative prompt) for classifier-free guidance. The MiniLM text
encoder is frozen: the states of the 48 captions and of "" are computed once.

adaLN-Zero start (`--zero-init`, DiT): the timestep projection, every block's gate rows, every
cross-attention output and the output projection start at zero, so each block begins as the
identity. One CPU thread by default; seeded; writes an EMA checkpoint (safetensors; the
transformer config, the demo settings and the run's record in its metadata) and a log.

    nice .venv/bin/python scripts/train_wan_shapes.py --steps 2400 --zero-init
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import time
from pathlib import Path

import numpy as np
import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from diffusers.training_utils import compute_density_for_timestep_sampling
from safetensors.torch import load_file, save_file
from train_common import step_with_ema, warmup_cosine

from tomobile.graphs.models.clips import all_specs, sample_batch
from tomobile.graphs.models.wan_shapes import DEMO, TRANSFORMER_CONFIG, WEIGHTS, caption_states, wan_transformer


def zero_init(model) -> None:
    """adaLN-Zero for Wan blocks: no timestep modulation, gates and output projections at zero."""
    with torch.no_grad():
        model.condition_embedder.time_proj.weight.zero_()
        model.condition_embedder.time_proj.bias.zero_()
        for block in model.blocks:
            block.scale_shift_table[:, 2].zero_()  # gate of self-attention
            block.scale_shift_table[:, 5].zero_()  # gate of the feed-forward
            block.attn2.to_out[0].weight.zero_()
            block.attn2.to_out[0].bias.zero_()
        model.proj_out.weight.zero_()
        model.proj_out.bias.zero_()


def save(model, path: Path, train: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    meta = {"config": json.dumps(TRANSFORMER_CONFIG), "demo": json.dumps(DEMO), "train": json.dumps(train)}
    save_file(state, str(tmp), metadata=meta)
    tmp.replace(path)


def draw_sigmas(sched, batch: int, high_share: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(sigmas, timesteps) (B,): diffusers' logit-normal draw over the scheduler's shifted sigmas,
    a `high_share` of them replaced by sigma ~ U(0.85, 1) (timestep = 1000 sigma)."""
    u = compute_density_for_timestep_sampling("logit_normal", batch, logit_mean=0.0, logit_std=1.0, generator=gen)
    idx = (u * sched.config.num_train_timesteps).long()
    sigmas, timesteps = sched.sigmas[idx].clone(), sched.timesteps[idx].clone()
    high = torch.rand(batch, generator=gen) < high_share
    drawn = 0.85 + 0.15 * torch.rand(batch, generator=gen)
    sigmas = torch.where(high, drawn, sigmas)
    timesteps = torch.where(high, drawn * sched.config.num_train_timesteps, timesteps)
    return sigmas, timesteps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=2400)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--ema", type=float, default=0.995)
    ap.add_argument("--cfg-drop", type=float, default=0.1)
    ap.add_argument("--high-sigma", type=float, default=0.25, help="share of samples with sigma ~ U(0.85, 1)")
    ap.add_argument("--zero-init", action="store_true", help="adaLN-Zero start (see zero_init)")
    ap.add_argument("--out", type=Path, default=WEIGHTS)
    ap.add_argument("--log", type=Path, default=Path("scripts/train_log_wan_shapes.txt"))
    ap.add_argument("--save-every", type=int, default=200)
    ap.add_argument("--init", type=Path, help="continue from a saved checkpoint (its EMA weights; a fresh "
                    "optimizer and learning-rate schedule over --steps)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    rng = np.random.default_rng(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    frames, size, length = DEMO["frames"], DEMO["size"], DEMO["caption_len"]
    states = caption_states([s.caption for s in all_specs()], length)  # (48, L, 384)
    empty = caption_states([""], length)  # (1, L, 384)
    sched = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=DEMO["shift"])
    model = wan_transformer(TRANSFORMER_CONFIG)
    if args.zero_init:
        zero_init(model)
    if args.init is not None:
        model.load_state_dict(load_file(str(args.init)))
    model.train()
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0, betas=(0.9, 0.99))

    def lr_at(step: int) -> float:
        return warmup_cosine(step, args.steps, args.lr)

    params = sum(p.numel() for p in model.parameters())
    record = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    header = (f"# wan-shapes training: transformer {json.dumps(TRANSFORMER_CONFIG)}\n# demo {json.dumps(DEMO)}, "
              f"params {params}, args {json.dumps(record)}\n")
    args.log.parent.mkdir(parents=True, exist_ok=True)
    log = args.log.open("w")
    log.write(header)
    print(header, end="", flush=True)
    start_wall, start_cpu, running = time.time(), time.process_time(), 0.0
    for step in range(args.steps):
        clips, idx = sample_batch(args.batch, frames, size, rng)  # (B, T, H, W, 3)
        x0 = torch.from_numpy(clips).permute(0, 4, 1, 2, 3) * 2.0 - 1.0  # (B, 3, T, H, W) in [-1, 1]
        drop = torch.rand(args.batch, generator=gen) < args.cfg_drop
        y = torch.where(drop[:, None, None], empty, states[torch.from_numpy(idx)])  # (B, L, 384)
        sigmas, timesteps = draw_sigmas(sched, args.batch, args.high_sigma, gen)
        noise = torch.randn(x0.shape, generator=gen)
        s = sigmas[:, None, None, None, None]
        xt = (1.0 - s) * x0 + s * noise
        v = model(xt, timesteps, y, return_dict=False)[0]  # (B, 3, T, H, W)
        loss = (v.float() - (noise - x0)).pow(2).mean()
        step_with_ema(model, ema, opt, loss, lr_at(step), args.ema)
        running += loss.item()
        if (step + 1) % 50 == 0:
            line = (f"step {step + 1:5d}  loss {running / 50:.4f}  lr {lr_at(step):.2e}  "
                    f"cpu {time.process_time() - start_cpu:7.1f}s  wall {time.time() - start_wall:7.1f}s\n")
            log.write(line)
            log.flush()
            print(line, end="", flush=True)
            running = 0.0
        if (step + 1) % args.save_every == 0 or step + 1 == args.steps:
            save(ema, args.out, {**record, "step": step + 1})
    log.write(f"# done: {args.steps} steps, cpu {time.process_time() - start_cpu:.1f}s, "
              f"wall {time.time() - start_wall:.1f}s on {args.threads} thread(s)\n")
    log.close()


if __name__ == "__main__":
    main()
