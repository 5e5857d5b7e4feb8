"""Temporal Dimension Token Merging (TDTM, On-device Sora) as static-shape ops.

Consecutive frame pairs are averaged, (x[2i] + x[2i+1]) / 2, so T frames become ceil(T/2); an
odd frame count keeps its last frame unmerged. After attention each merged frame is copied back
to both of its sources (unmerge = repeat). Only reshapes, means, expands and one concat: every
backend lowers them, and the frame count is a Python int fixed at trace time.
"""

from __future__ import annotations

import torch


def merged_frames(frames: int) -> int:
    """Frame count after TDTM: pairs plus an odd last frame."""
    return frames // 2 + frames % 2


def merged_positions(frames: int) -> list[float]:
    """Time position of each merged frame: the mean of its sources (2i + 0.5; last odd frame T-1)."""
    pos = [2 * i + 0.5 for i in range(frames // 2)]
    if frames % 2:
        pos.append(float(frames - 1))
    return pos


def merge_frames(x: torch.Tensor) -> torch.Tensor:
    """x (B, T, S, C) -> (B, ceil(T/2), S, C): pairwise frame average, odd last frame kept."""
    b, t, s, c = x.shape
    pairs = t // 2
    # Slice only when there is an odd frame: a full-range slice exports as `alias`, which Core ML
    # has no converter for.
    head = x if t % 2 == 0 else x[:, : 2 * pairs]
    even = head.reshape(b, pairs, 2, s, c).mean(dim=2)  # (B, T//2, S, C)
    if t % 2 == 0:
        return even
    return torch.cat([even, x[:, 2 * pairs :]], dim=1)  # (B, T//2 + 1, S, C)


def unmerge_frames(x: torch.Tensor, frames: int) -> torch.Tensor:
    """x (B, ceil(T/2), S, C) -> (B, T, S, C): each merged frame copied to both sources."""
    b, _, s, c = x.shape
    pairs = frames // 2
    head = x if frames % 2 == 0 else x[:, :pairs]
    even = head.unsqueeze(2).expand(b, pairs, 2, s, c).reshape(b, 2 * pairs, s, c)  # (B, 2*(T//2), S, C)
    if frames % 2 == 0:
        return even
    return torch.cat([even, x[:, pairs:]], dim=1)  # (B, T, S, C)


def merge_frame_tokens(x: torch.Tensor, frames: int) -> torch.Tensor:
    """Flat tokens x (B, T*S, C) -> (B, T'*S, C)."""
    b, n, c = x.shape
    merged = merge_frames(x.reshape(b, frames, n // frames, c))  # (B, T', S, C)
    return merged.reshape(b, -1, c)  # (B, T'*S, C)


def unmerge_frame_tokens(x: torch.Tensor, frames: int) -> torch.Tensor:
    """Flat tokens x (B, T'*S, C) -> (B, T*S, C)."""
    b, n, c = x.shape
    t_merged = merged_frames(frames)
    full = unmerge_frames(x.reshape(b, t_merged, n // t_merged, c), frames)  # (B, T, S, C)
    return full.reshape(b, -1, c)  # (B, T*S, C)
