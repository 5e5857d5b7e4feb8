"""Temporal Dimension Token Merging (TDTM, On-device Sora) as static-shape ops.

Consecutive frame pairs are averaged, (x[2i] + x[2i+1]) / 2; after attention each merged frame is
copied back to both of its sources (unmerge = repeat). Two choices are modes, the original's
behaviour by default (README: Differences from the original code):

- odd frame counts, `TdtmOdd`: `original` (On-device Sora's merge.py) drops the last frame when
  merging, T -> T // 2, and on unmerge fills it with a copy of the last merged frame (the last
  pair's average); `keep` keeps the odd frame as its own merged frame, T -> T // 2 + 1, and copies
  it back to itself; `first` keeps the first frame alone and pairs the rest, (0), (1, 2), (3, 4), ...,
  T -> T // 2 + 1: a causal video VAE (Wan's, LTX-Video's) encodes the first video frame alone into
  latent frame 0 (the default of the diffusers video transformers, graphs/methods/tdtm_attention.py). (The
  original's unmerge decides by the merged count and returns T - 1 or T + 1 frames for T = 5, 9, 13
  and 6, 10, 14; here every T gets its own T back.) Even frame counts pair (0, 1), (2, 3), ... in
  every mode.
- temporal RoPE positions of the merged frames, `TdtmPositions`: `original` (On-device Sora rotates
  the merged sequence as it is) 0..T'-1; `midpoint` the mean time of each pair's sources, 2i + 0.5
  (a kept odd frame: T - 1; with `first`, frame 0 at 0 and the pairs at 2i + 1.5).

Only reshapes, means, expands, proper slices and one concat: every backend lowers them, and the
frame count is a Python int fixed at trace time.
"""

from __future__ import annotations

from enum import Enum

import torch

from ..errors import InputError


class TdtmPositions(str, Enum):
    ORIGINAL = "original"  # On-device Sora: RoPE on the merged sequence, positions 0..T'-1
    MIDPOINT = "midpoint"  # each merged frame at its sources' mean time, 2i + 0.5


class TdtmOdd(str, Enum):
    ORIGINAL = "original"  # On-device Sora: drop the last frame, refill it with the last pair's average
    KEEP = "keep"  # the odd last frame is its own merged frame
    FIRST = "first"  # the first frame is its own merged frame, the rest pair up: (0), (1, 2), (3, 4), ...


def _alone(frames: int, odd: TdtmOdd) -> bool:
    """Whether an odd frame count keeps one frame alone (the last with `keep`, the first with `first`)."""
    return frames % 2 == 1 and TdtmOdd(odd) is not TdtmOdd.ORIGINAL


def merged_frames(frames: int, odd: TdtmOdd = TdtmOdd.ORIGINAL) -> int:
    """Frame count after TDTM: the pairs, plus the odd frame when it is kept alone."""
    count = frames // 2 + int(_alone(frames, odd))
    if count < 1:
        raise InputError(f"TDTM with odd frames {TdtmOdd(odd).value!r} needs at least 2 frames, got {frames}")
    return count


def merged_positions(frames: int, positions: TdtmPositions = TdtmPositions.ORIGINAL,
                     odd: TdtmOdd = TdtmOdd.ORIGINAL) -> list[float]:
    """Temporal RoPE position of each merged frame (length merged_frames(frames, odd))."""
    count = merged_frames(frames, odd)
    if TdtmPositions(positions) is TdtmPositions.ORIGINAL:
        return [float(i) for i in range(count)]
    if TdtmOdd(odd) is TdtmOdd.FIRST and frames % 2 == 1:
        return [0.0] + [2 * i + 1.5 for i in range(frames // 2)]
    pos = [2 * i + 0.5 for i in range(frames // 2)]
    return pos + [float(frames - 1)] * (count - len(pos))


def merge_frames(x: torch.Tensor, odd: TdtmOdd = TdtmOdd.ORIGINAL) -> torch.Tensor:
    """x (B, T, S, C) -> (B, T', S, C): pairwise frame average; an odd last frame dropped or kept,
    or (`first`) an odd first frame kept and the rest paired."""
    b, t, s, c = x.shape
    pairs = t // 2
    if merged_frames(t, odd) == t:  # T = 1, kept: the frame is its own merged frame
        return x
    if t % 2 == 1 and TdtmOdd(odd) is TdtmOdd.FIRST:
        rest = x[:, 1:].reshape(b, pairs, 2, s, c).mean(dim=2)  # (B, T//2, S, C): (1, 2), (3, 4), ...
        return torch.cat([x[:, :1], rest], dim=1)  # (B, T//2 + 1, S, C)
    # Slice only when there is an odd frame: a full-range slice exports as `alias`, which Core ML
    # has no converter for.
    head = x if t % 2 == 0 else x[:, : 2 * pairs]
    even = head.reshape(b, pairs, 2, s, c).mean(dim=2)  # (B, T//2, S, C)
    if t % 2 == 0 or TdtmOdd(odd) is TdtmOdd.ORIGINAL:
        return even
    return torch.cat([even, x[:, 2 * pairs :]], dim=1)  # (B, T//2 + 1, S, C)


def unmerge_frames(x: torch.Tensor, frames: int, odd: TdtmOdd = TdtmOdd.ORIGINAL) -> torch.Tensor:
    """x (B, T', S, C) -> (B, T, S, C): each merged frame copied to both sources; an odd last frame
    gets the last merged frame (original) or its own (keep); with `first` an odd first frame gets its
    own and every later pair its merged frame."""
    b, t_merged, s, c = x.shape
    pairs = frames // 2
    if t_merged == frames:  # T = 1, kept
        return x
    if frames % 2 == 1 and TdtmOdd(odd) is TdtmOdd.FIRST:
        rest = x[:, 1:].unsqueeze(2).expand(b, pairs, 2, s, c).reshape(b, 2 * pairs, s, c)  # (B, T - 1, S, C)
        return torch.cat([x[:, :1], rest], dim=1)  # (B, T, S, C)
    head = x if t_merged == pairs else x[:, :pairs]
    even = head.unsqueeze(2).expand(b, pairs, 2, s, c).reshape(b, 2 * pairs, s, c)  # (B, 2*(T//2), S, C)
    if frames % 2 == 0:
        return even
    if TdtmOdd(odd) is TdtmOdd.ORIGINAL:
        return torch.cat([even, even[:, 2 * pairs - 1 :]], dim=1)  # (B, T, S, C): last pair's value again
    return torch.cat([even, x[:, pairs:]], dim=1)  # (B, T, S, C)


def merge_frame_tokens(x: torch.Tensor, frames: int, odd: TdtmOdd = TdtmOdd.ORIGINAL) -> torch.Tensor:
    """Flat tokens x (B, T*S, C) -> (B, T'*S, C)."""
    b, n, c = x.shape
    merged = merge_frames(x.reshape(b, frames, n // frames, c), odd)  # (B, T', S, C)
    return merged.reshape(b, -1, c)  # (B, T'*S, C)


def unmerge_frame_tokens(x: torch.Tensor, frames: int, odd: TdtmOdd = TdtmOdd.ORIGINAL) -> torch.Tensor:
    """Flat tokens x (B, T'*S, C) -> (B, T*S, C)."""
    b, n, c = x.shape
    t_merged = merged_frames(frames, odd)
    full = unmerge_frames(x.reshape(b, t_merged, n // t_merged, c), frames, odd)  # (B, T, S, C)
    return full.reshape(b, -1, c)  # (B, T*S, C)
