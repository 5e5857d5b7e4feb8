"""A small video diffusion transformer with Open-Sora STDiT3's structure, static shapes throughout.

    x (B, 3, T, H, W) -> patch embed (B, T, S, D) + per-frame 2D sin-cos position
        (+ 1D sin-cos frame-index embedding and pooled caption in adaLN, when the config says so)
    t (B,) in [0, 1] -> sinusoidal(1000 t) -> MLP -> t_emb (B, D) -> adaLN-single t0 (B, 6D)
    y (B, L, Dy) caption token states, mask (B, L) 1/0 -> MLP -> (B, L, D), additive key bias
    depth x [spatial block over (B*T, S, D), temporal block over (B*S, T, D) with RoPE]
    each block: modulate(LN(x)) -> self-attn -> gate, residual; cross-attn(x, y); modulate -> MLP -> gate
    final layer: modulate(LN) -> linear -> unpatchify -> velocity (B, 3, T, H, W)

Merges are chosen per call by a frozen `VideoMerge` of Python values (static at trace time):
TDTM averages frame pairs at the inputs of spatial, temporal and cross-attention and copies the
results back (LayerNorm, modulation, gates, residuals, MLP stay at full length, as On-device
Sora does); its odd-frame and RoPE-position modes come from the config (graphs/methods/tdtm.py).
Spatial ToMe (graphs/methods/spatial_merge.py) wraps spatial self-attention only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from ..methods.merge import ARITHMETIC, MASK_BIAS
from ..methods.ops import MergeOps
from ..methods.spatial_merge import SpatialMergeConfig, merge_attend_unmerge
from ..methods.tdtm import (
    TdtmOdd,
    TdtmPositions,
    merge_frame_tokens,
    merged_frames,
    merged_positions,
    unmerge_frame_tokens,
)


@dataclass(frozen=True)
class VideoDiTConfig:
    frames: int = 8
    size: int = 32
    channels: int = 3
    patch: int = 4
    hidden: int = 128
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    caption_len: int = 16
    caption_dim: int = 384
    # Add the caption's masked mean (MiniLM's sentence embedding) to the timestep embedding, so
    # every block's adaLN modulation sees the prompt, as well as cross-attention to its tokens.
    pooled_caption: bool = False
    # Add a 1D sin-cos embedding of the frame index to every token (Open-Sora 1.0 STDiT's temporal
    # position embedding). RoPE in temporal attention gives only relative offsets, so without it
    # no token knows which frame comes first, and a direction of motion cannot be drawn from noise.
    frame_pos: bool = False
    # The network outputs the clean clip x0 and forward returns v = (x - x0) / t ("x-prediction",
    # as in JiT, Li & He 2025): a 4x4x3 patch is 48 numbers per token, and predicting v means
    # carrying the noise through a 96-wide model; the clean clip is simple. Outputs stay velocities.
    x0_prediction: bool = False
    # TDTM modes (graphs/methods/tdtm.py), On-device Sora's by default: temporal RoPE positions of merged
    # frames (original: 0..T'-1; midpoint: 2i + 0.5) and an odd frame count (original: the last
    # frame dropped, refilled from the last pair; keep: its own merged frame). A checkpoint's
    # metadata may record its own setting.
    tdtm_positions: TdtmPositions = TdtmPositions.ORIGINAL
    tdtm_odd: TdtmOdd = TdtmOdd.ORIGINAL

    def __post_init__(self) -> None:
        # Plain strings (JSON metadata, CLI) become the enums; a wrong value is a ValueError.
        object.__setattr__(self, "tdtm_positions", TdtmPositions(self.tdtm_positions))
        object.__setattr__(self, "tdtm_odd", TdtmOdd(self.tdtm_odd))

    @property
    def grid(self) -> int:
        return self.size // self.patch

    @property
    def tokens(self) -> int:
        return self.grid * self.grid


@dataclass(frozen=True)
class VideoMerge:
    """Static merge choice for one denoiser call: TDTM on/off, spatial ToMe settings."""

    tdtm: bool = False
    spatial: SpatialMergeConfig = field(default_factory=SpatialMergeConfig)


def sincos_2d(grid: int, dim: int) -> torch.Tensor:
    """2D sin-cos position table (grid*grid, dim): the 1D table of the row in the first half of
    the channels, of the column in the second."""
    table = sincos_1d(grid, dim // 2)  # (G, D/2)
    rows = torch.arange(grid).repeat_interleave(grid)  # (S,) y of each token, row-major
    cols = torch.arange(grid).repeat(grid)  # (S,) x
    return torch.cat([table[rows], table[cols]], dim=1)  # (S, D)


# Floor on t where x-prediction divides by it (a numerical guard; sampling never reaches t = 0).
T_FLOOR = 1e-3


def sincos_1d(length: int, dim: int) -> torch.Tensor:
    """1D sin-cos position table (length, dim) for positions 0..length-1."""
    half = dim // 2
    omega = 1.0 / 10000 ** (torch.arange(half, dtype=torch.float64) / half)  # (D/2,)
    ang = torch.arange(length, dtype=torch.float64)[:, None] * omega[None]  # (T, D/2)
    return torch.cat([ang.sin(), ang.cos()], dim=1).float()  # (T, D)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """t (B,) in [0, 1] -> (B, dim) sinusoidal features of 1000 t."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    ang = (t.float() * 1000.0)[:, None] * freqs[None]  # (B, D/2)
    return torch.cat([ang.cos(), ang.sin()], dim=-1)  # (B, D)


def rope_tables(positions: list[float], head_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin tables (T, head_dim) for rotary embedding at the given (possibly fractional) positions."""
    half = head_dim // 2
    inv = 1.0 / 10000 ** (torch.arange(half, dtype=torch.float64) / half)  # (hd/2,)
    ang = torch.tensor(positions, dtype=torch.float64)[:, None] * inv[None]  # (T, hd/2)
    ang = torch.cat([ang, ang], dim=-1)  # (T, hd)
    return ang.cos().float(), ang.sin().float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (N, heads, T, hd) rotated by position: x*cos + rotate_half(x)*sin."""
    half = x.shape[-1] // 2
    rot = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rot * sin


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class Attention(nn.Module):
    """Multi-head self-attention on (N, L, D), optional RoPE over L, plain matmul softmax."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        n, l, d = x.shape
        hd = d // self.heads
        qkv = self.qkv(x).reshape(n, l, 3, self.heads, hd).permute(2, 0, 3, 1, 4)  # (3, N, h, L, hd)
        q, k, v = qkv[0], qkv[1], qkv[2]
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        attn = (q @ k.transpose(-1, -2)) * hd**-0.5  # (N, h, L, L)
        out = attn.softmax(dim=-1) @ v  # (N, h, L, hd)
        return self.proj(out.transpose(1, 2).reshape(n, l, d))  # (N, L, D)


class CrossAttention(nn.Module):
    """Queries from video tokens (B, N, D), keys/values from caption tokens (B, L, D), additive mask."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, y: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        l, hd = y.shape[1], d // self.heads
        q = self.q(x).reshape(b, n, self.heads, hd).transpose(1, 2)  # (B, h, N, hd)
        kv = self.kv(y).reshape(b, l, 2, self.heads, hd).permute(2, 0, 3, 1, 4)  # (2, B, h, L, hd)
        attn = (q @ kv[0].transpose(-1, -2)) * hd**-0.5 + bias  # (B, h, N, L)
        out = attn.softmax(dim=-1) @ kv[1]  # (B, h, N, hd)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))  # (B, N, D)


class STBlock(nn.Module):
    """One STDiT3 block; `temporal` picks attention over frames (with RoPE) instead of space."""

    def __init__(self, cfg: VideoDiTConfig, temporal: bool) -> None:
        super().__init__()
        d = cfg.hidden
        self.temporal = temporal
        self.cfg = cfg
        self.norm1 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(d, cfg.heads)
        self.cross_attn = CrossAttention(d, cfg.heads)
        self.norm2 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        hid = int(d * cfg.mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(d, hid), nn.GELU(approximate="tanh"), nn.Linear(hid, d))
        self.scale_shift_table = nn.Parameter(torch.randn(6, d) / d**0.5)

    def _self_attn(self, x: torch.Tensor, frames: int, merge: VideoMerge, rope, ops: MergeOps) -> torch.Tensor:
        """x (B, T*S, D) at T = `frames` -> (B, T*S, D)."""
        b, _, d = x.shape
        s = self.cfg.tokens
        if self.temporal:
            xt = x.reshape(b, frames, s, d).transpose(1, 2).reshape(b * s, frames, d)  # (B*S, T, D)
            out = self.attn(xt, rope)
            return out.reshape(b, s, frames, d).transpose(1, 2).reshape(b, frames * s, d)  # (B, T*S, D)
        xs = x.reshape(b * frames, s, d)  # (B*T, S, D)
        g = self.cfg.grid
        out = merge_attend_unmerge(xs, g, g, merge.spatial, self.attn, ops=ops)  # (B*T, S, D)
        return out.reshape(b, frames * s, d)  # (B, T*S, D)

    def forward(self, x, y, bias, t0, merge: VideoMerge, rope, ops: MergeOps = ARITHMETIC) -> torch.Tensor:
        """x (B, T*S, D), y (B, L, D), bias (B, 1, 1, L), t0 (B, 6D); rope for the call's frame count;
        `ops` spells the spatial merge (graphs/methods/ops.py)."""
        b, _, d = x.shape
        frames = self.cfg.frames
        mod = self.scale_shift_table[None] + t0.reshape(b, 6, d)  # (B, 6, D)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mod.chunk(6, dim=1)
        h = modulate(self.norm1(x), shift_msa, scale_msa)  # (B, T*S, D)
        odd = self.cfg.tdtm_odd
        if merge.tdtm:
            h = merge_frame_tokens(h, frames, odd)  # (B, T'*S, D)
            h = unmerge_frame_tokens(self._self_attn(h, merged_frames(frames, odd), merge, rope, ops), frames, odd)
        else:
            h = self._self_attn(h, frames, merge, rope, ops)
        x = x + gate_msa * h
        if merge.tdtm:
            c = self.cross_attn(merge_frame_tokens(x, frames, odd), y, bias)  # (B, T'*S, D)
            x = x + unmerge_frame_tokens(c, frames, odd)
        else:
            x = x + self.cross_attn(x, y, bias)
        x = x + gate_mlp * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))
        return x


class VideoDiT(nn.Module):
    """Denoiser: velocity v(x_t, t, caption) for rectified flow. State-dict keys never depend on merges."""

    def __init__(self, cfg: VideoDiTConfig) -> None:
        super().__init__()
        d, p = cfg.hidden, cfg.patch
        self.cfg = cfg
        self.x_embedder = nn.Linear(cfg.channels * p * p, d)
        self.register_buffer("pos_embed", sincos_2d(cfg.grid, d), persistent=False)  # (S, D)
        if cfg.frame_pos:
            self.register_buffer("frame_embed", sincos_1d(cfg.frames, d)[:, None], persistent=False)  # (T, 1, D)
        self.t_embedder = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.t_block = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d))
        self.y_embedder = nn.Sequential(nn.Linear(cfg.caption_dim, d), nn.GELU(approximate="tanh"), nn.Linear(d, d))
        # Learned "null caption" for classifier-free guidance (Open-Sora's y_embedding).
        self.y_null = nn.Parameter(torch.randn(cfg.caption_len, cfg.caption_dim) * 0.1)
        if cfg.pooled_caption:
            self.y_pooled = nn.Sequential(nn.Linear(cfg.caption_dim, d), nn.SiLU(), nn.Linear(d, d))
        self.spatial_blocks = nn.ModuleList(STBlock(cfg, temporal=False) for _ in range(cfg.depth))
        self.temporal_blocks = nn.ModuleList(STBlock(cfg, temporal=True) for _ in range(cfg.depth))
        self.final_norm = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.final_table = nn.Parameter(torch.randn(2, d) / d**0.5)
        self.final_linear = nn.Linear(d, p * p * cfg.channels)
        hd = d // cfg.heads
        tdtm_pos = merged_positions(cfg.frames, cfg.tdtm_positions, cfg.tdtm_odd)
        for name, pos in (("full", [float(i) for i in range(cfg.frames)]), ("tdtm", tdtm_pos)):
            cos, sin = rope_tables(pos, hd)
            self.register_buffer(f"rope_cos_{name}", cos, persistent=False)  # (T or T', hd)
            self.register_buffer(f"rope_sin_{name}", sin, persistent=False)
        nn.init.zeros_(self.final_linear.weight)
        nn.init.zeros_(self.final_linear.bias)

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, T, H, W) -> (B, T, S, C*p*p), features ordered (C, py, px).

        At most 5-D intermediates: XNNPACK (ExecuTorch) rejects tensors above 6 dimensions.
        """
        c, p, g = self.cfg.channels, self.cfg.patch, self.cfg.grid
        b, _, t = x.shape[:3]
        x = x.reshape(b * c * t, g, p, g, p).permute(0, 1, 3, 2, 4)  # (B*C*T, Gy, Gx, py, px)
        x = x.reshape(b, c, t, g * g, p * p).permute(0, 2, 3, 1, 4)  # (B, T, S, C, p*p)
        return x.reshape(b, t, g * g, c * p * p)  # (B, T, S, C*p*p)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, S, C*p*p) -> (B, C, T, H, W); the inverse of patchify."""
        c, p, g = self.cfg.channels, self.cfg.patch, self.cfg.grid
        b, t = x.shape[:2]
        x = x.reshape(b, t, g * g, c, p * p).permute(0, 3, 1, 2, 4)  # (B, C, T, S, p*p)
        x = x.reshape(b * c * t, g, g, p, p).permute(0, 1, 3, 2, 4)  # (B*C*T, Gy, py, Gx, px)
        return x.reshape(b, c, t, g * p, g * p)  # (B, C, T, H, W)

    def caption_states(self, y: torch.Tensor, mask: torch.Tensor, drop: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Swap in the null caption where drop (B,) is 1; returns y (B, L, Dy) and mask (B, L) float."""
        keep = (1.0 - drop.float())[:, None, None]  # (B, 1, 1)
        y = y * keep + self.y_null[None] * (1.0 - keep)
        mask = mask.float() * keep[:, :, 0] + (1.0 - keep[:, :, 0])
        return y, mask

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        y: torch.Tensor,
        mask: torch.Tensor,
        merge: VideoMerge = VideoMerge(),
        ops: MergeOps = ARITHMETIC,
    ) -> torch.Tensor:
        """x (B, 3, T, H, W), t (B,), y (B, L, Dy), mask (B, L) -> velocity (B, 3, T, H, W); `ops`
        spells the spatial merge."""
        cfg = self.cfg
        b, d = x.shape[0], cfg.hidden
        h = self.x_embedder(self.patchify(x)) + self.pos_embed  # (B, T, S, D)
        if cfg.frame_pos:
            h = h + self.frame_embed  # (B, T, S, D)
        h = h.reshape(b, cfg.frames * cfg.tokens, d)  # (B, T*S, D)
        t_emb = self.t_embedder(timestep_embedding(t, d))  # (B, D)
        if cfg.pooled_caption:
            m = mask.to(y.dtype)[:, :, None]  # (B, L, 1)
            pooled = (y * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)  # (B, Dy)
            t_emb = t_emb + self.y_pooled(pooled)  # (B, D)
        t0 = self.t_block(t_emb)  # (B, 6D)
        yc = self.y_embedder(y)  # (B, L, D)
        bias = ((1.0 - mask.float()) * MASK_BIAS)[:, None, None, :]  # (B, 1, 1, L)
        rope = (self.rope_cos_tdtm, self.rope_sin_tdtm) if merge.tdtm else (self.rope_cos_full, self.rope_sin_full)
        for spatial, temporal in zip(self.spatial_blocks, self.temporal_blocks):
            h = spatial(h, yc, bias, t0, merge, rope, ops)
            h = temporal(h, yc, bias, t0, merge, rope, ops)
        shift, scale = (self.final_table[None] + t_emb[:, None]).chunk(2, dim=1)  # (B, 1, D) each
        out = self.final_linear(modulate(self.final_norm(h), shift, scale))  # (B, T*S, C*p*p)
        out = self.unpatchify(out.reshape(b, cfg.frames, cfg.tokens, -1))  # (B, C, T, H, W)
        if cfg.x0_prediction:
            return (x - out) / t.clamp(min=T_FLOOR).reshape(b, 1, 1, 1, 1)  # v = (x_t - x0) / t
        return out
