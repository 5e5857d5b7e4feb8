"""Train `video-dit-tiny` on procedural clips (graphs/models/clips.py) with the rectified-flow objective.

    x_t = (1 - t) x0 + t eps,  target v = eps - x0,  t = shift(sigmoid(N(0, 1)))

t goes through the same timestep shift the sampler uses (runtime/sampler.py), 10% of captions are
replaced by the learned null caption (classifier-free guidance). The text encoder is frozen, so
the MiniLM states of all 48 captions are computed once. One CPU thread by default; the whole run is
seeded and writes an EMA checkpoint (safetensors, config in its metadata) and a log.

`--tdtm-share P` runs a share P of the steps with TDTM merged in every block (the way the sampler
calls the merged denoiser for its first steps), with the TDTM modes the checkpoint records
(`--tdtm-positions`, On-device Sora's `original` by default), so the merged forward is trained too.

    .venv/bin/python scripts/train_video_dit.py --steps 2200 --out graphs/models/weights/video_dit_tiny.safetensors
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import random
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from train_common import step_with_ema, warmup_cosine

from tomobile.graphs.models.clips import all_specs, sample_batch
from tomobile.graphs.models.text_context import encode_captions
from tomobile.graphs.models.video_dit import VideoDiT, VideoDiTConfig, VideoMerge
from tomobile.runtime.sampler import shift_ratio, shift_time

TINY = VideoDiTConfig(frames=8, size=32, patch=4, hidden=96, depth=3, heads=4, caption_len=16)


def zero_init(model: VideoDiT) -> None:
    """adaLN-Zero (DiT) for STDiT3-style blocks: every block starts as the identity.

    The t_block output and the gate rows of each scale_shift_table start at zero, and so does each
    cross-attention output projection (PixArt), so early steps train the embedders and final layer
    and each block's contribution grows from nothing.
    """
    with torch.no_grad():
        model.t_block[-1].weight.zero_()
        model.t_block[-1].bias.zero_()
        for block in [*model.spatial_blocks, *model.temporal_blocks]:
            block.scale_shift_table[2].zero_()  # gate_msa
            block.scale_shift_table[5].zero_()  # gate_mlp
            block.cross_attn.proj.weight.zero_()
            block.cross_attn.proj.bias.zero_()


def save(model: VideoDiT, path: Path, meta: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp), metadata={"config": json.dumps(asdict(model.cfg)), "train": json.dumps(meta)})
    tmp.replace(path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=2200)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=6e-4)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--ema", type=float, default=0.995)
    ap.add_argument("--cfg-drop", type=float, default=0.1)
    ap.add_argument("--out", type=Path, default=Path("graphs/models/weights/video_dit_tiny.safetensors"))
    ap.add_argument("--log", type=Path, default=Path("scripts/train_log_video_dit.txt"))
    ap.add_argument("--save-every", type=int, default=250)
    ap.add_argument("--hidden", type=int, default=TINY.hidden)
    ap.add_argument("--depth", type=int, default=TINY.depth)
    ap.add_argument("--pooled", action="store_true", help="pooled caption in adaLN (VideoDiTConfig.pooled_caption)")
    ap.add_argument("--frame-pos", action="store_true", help="frame-index embedding (VideoDiTConfig.frame_pos)")
    ap.add_argument("--high-t", type=float, default=0.0,
                    help="share of samples with t ~ U(0.85, 1): where only the caption can place the shape")
    ap.add_argument("--x0", action="store_true", help="x-prediction (VideoDiTConfig.x0_prediction)")
    ap.add_argument("--zero-init", action="store_true", help="adaLN-Zero initialisation (see zero_init)")
    ap.add_argument("--tdtm-share", type=float, default=0.0, help="share of steps whose forward runs TDTM-merged")
    ap.add_argument("--tdtm-positions", default="original", help="TDTM RoPE positions recorded in the checkpoint: original|midpoint")
    ap.add_argument("--init", type=Path, help="continue from this checkpoint (model and EMA start from its weights)")
    ap.add_argument("--append-log", action="store_true", help="append to --log instead of replacing it")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    rng = np.random.default_rng(args.seed)
    cfg = dataclasses.replace(TINY, hidden=args.hidden, depth=args.depth, pooled_caption=args.pooled,
                              frame_pos=args.frame_pos, x0_prediction=args.x0, tdtm_positions=args.tdtm_positions)
    ratio = shift_ratio(cfg.size, cfg.size, cfg.frames)
    states, masks = encode_captions([s.caption for s in all_specs()], cfg.caption_len)  # (48, L, 384), (48, L)
    model = VideoDiT(cfg)
    if args.zero_init:
        zero_init(model)
    if args.init is not None:
        model.load_state_dict(load_file(str(args.init)))
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0, betas=(0.9, 0.99))

    def lr_at(step: int) -> float:
        return warmup_cosine(step, args.steps, args.lr)

    args.log.parent.mkdir(parents=True, exist_ok=True)
    params = sum(p.numel() for p in model.parameters())
    header = (
        f"# video-dit-tiny training: config {json.dumps(asdict(cfg))}\n"
        f"# params {params}, steps {args.steps}, batch {args.batch}, lr {args.lr}, seed {args.seed}, "
        f"threads {args.threads}, ema {args.ema}, cfg_drop {args.cfg_drop}, shift ratio {ratio:.3f}, init {args.init}, "
        f"zero_init {args.zero_init}, high_t {args.high_t}, tdtm_share {args.tdtm_share}\n"
    )
    log = args.log.open("a" if args.append_log else "w")
    log.write(header)
    print(header, end="", flush=True)
    start, running = time.time(), 0.0
    for step in range(args.steps):
        clips, idx = sample_batch(args.batch, cfg.frames, cfg.size, rng)  # (B, T, H, W, 3)
        x0 = torch.from_numpy(clips).permute(0, 4, 1, 2, 3) * 2.0 - 1.0  # (B, 3, T, H, W) in [-1, 1]
        ids = torch.from_numpy(idx)
        y, mask = states[ids], masks[ids]
        drop = (torch.rand(args.batch) < args.cfg_drop).float()
        y, maskf = model.caption_states(y, mask, drop)
        t = shift_time(torch.sigmoid(torch.randn(args.batch)), ratio)
        high = torch.rand(args.batch) < args.high_t
        t = torch.where(high, 0.85 + 0.15 * torch.rand(args.batch), t)
        eps = torch.randn_like(x0)
        tb = t[:, None, None, None, None]
        xt = (1 - tb) * x0 + tb * eps
        merge = VideoMerge(tdtm=bool(args.tdtm_share > 0 and rng.random() < args.tdtm_share))  # no draw at share 0
        err = (model(xt, t, y, maskf, merge) - (eps - x0)).pow(2)  # (B, 3, T, H, W)
        if cfg.x0_prediction:  # v error = x0 error / t: cap that 1/t^2 weight at t = 0.05 (JiT)
            err = err * (t / t.clamp(min=0.05)).pow(2)[:, None, None, None, None]
        loss = err.mean()
        step_with_ema(model, ema, opt, loss, lr_at(step), args.ema)
        running += loss.item()
        if (step + 1) % 50 == 0:
            line = f"step {step + 1:5d}  loss {running / 50:.4f}  lr {lr_at(step):.2e}  elapsed {time.time() - start:7.1f}s\n"
            log.write(line)
            log.flush()
            print(line, end="", flush=True)
            running = 0.0
        if (step + 1) % args.save_every == 0 or step + 1 == args.steps:
            save(ema, args.out, {"step": step + 1, "seed": args.seed, "steps": args.steps,
                                 "init": str(args.init) if args.init else None, "tdtm_share": args.tdtm_share})
    total = time.time() - start
    log.write(f"# done: {args.steps} steps in {total:.1f}s on {args.threads} thread(s)\n")
    log.close()
    print(f"done in {total:.1f}s", flush=True)


if __name__ == "__main__":
    main()
