"""TDTM on the full 3D attention of diffusers' video transformers (Wan 2.1, LTX-Video): `--merge tdtm`.

On-device Sora merges latent frame pairs in STDiT's factorized attention; here the same rule wraps
the full 3D self-attention and the cross-attention of every block, as a patch on diffusers' own
attention modules (their processors), so norms, modulation, gates, residuals and the feed-forward
run at full length, as diffusers wrote them:

- the attention's query-side input, tokens (B, F*S, C) frame-major (F latent frames of S patches),
  is merged by averaging consecutive latent frame pairs, (x[2i] + x[2i+1]) / 2 (methods/tdtm.py);
  self-attention thus also takes its keys and values from the merged tokens, cross-attention keeps
  its text keys and values;
- an odd F keeps latent frame 0 alone and pairs the rest, (0), (1, 2), (3, 4), ... (`first`, the
  default: a causal video VAE encodes the first video frame alone into latent frame 0); On-device
  Sora's `original` (drop the last frame, refill it with the last pair's average) and `keep` (the
  last frame alone) are the other modes;
- the merged sequence gets the rotary positions of latent frames 0..F'-1 (On-device Sora rotates
  the merged sequence as it is), spatial positions unchanged: the first F'*S rows of the tables the
  model hands its blocks. For LTX-Video, whose RoPE takes coordinates, merged frame i thus has the
  temporal coordinate of latent frame i (i * 8 / frame_rate / 20 with LTXPipeline's scaling) and
  the spatial coordinates of its tokens;
- each attention output is copied back to both frames of its pair.

`apply_tdtm(transformer, rule)` swaps every attn1 / attn2 processor for a `TdtmAttnProcessor`
wrapping it; `remove_tdtm` puts the wrapped ones back. `tdtm_twin` is a second module tree that
shares every parameter with the model and carries the patch, so the plain and the TDTM transformer
are exported from one copy of the weights.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import InputError
from ..spec.grammar import SpecError
from .method import Method
from .tdtm import TdtmOdd, merge_frame_tokens, merged_frames, unmerge_frame_tokens

METHOD = "tdtm"
ATTENTIONS = ("attn1", "attn2")  # the self- and cross-attention of every Wan / LTX-Video block


@dataclass(frozen=True)
class TdtmParams:
    """`--merge tdtm`: its settings (the odd-frame mode, the shape) come from the model's options."""

    def describe(self) -> str:
        return ""

    def to_json(self) -> dict:
        return {}


@dataclass(frozen=True)
class TdtmRule:
    """The merge fixed at patch time: `frames` latent frames (after temporal patching) of
    `tokens_per_frame` tokens each, and the odd-frame mode."""

    frames: int
    tokens_per_frame: int
    odd: TdtmOdd = TdtmOdd.FIRST
    drop: bool = False  # `drop:tdtm`, the token-drop oracle: the first F'*S tokens in, zero rows appended out

    def __post_init__(self) -> None:
        object.__setattr__(self, "odd", TdtmOdd(self.odd))
        if self.frames < 2:
            raise InputError(f"--merge tdtm merges latent frame pairs and needs at least 2 latent frames; this shape "
                             f"has {self.frames} (give more --frames)")

    @property
    def merged(self) -> int:
        return merged_frames(self.frames, self.odd)

    def to_json(self) -> dict:
        method = {"method": "drop", "like": METHOD} if self.drop else {"method": METHOD}
        return {**method, "odd_frames": self.odd.value, "positions": "original", "latent_frames": self.frames,
                "merged_frames": self.merged, "tokens": self.frames * self.tokens_per_frame,
                "merged_tokens": self.merged * self.tokens_per_frame}


class TdtmAttnProcessor:
    """A diffusers attention processor (`inner`) run on TDTM-merged frames.

    What it changes from `inner`: the query-side `hidden_states` (B, F*S, C) enter as (B, F'*S, C),
    merged frame pairs; the rotary tables (cos, sin), (.., F*S, ..) along dim 1, enter as their
    first F'*S rows (latent frames 0..F'-1); the output (B, F'*S, C) leaves copied back to (B, F*S, C).
    Keys and values of a cross-attention (`encoder_hidden_states`) and its mask are untouched.

    With the rule's `drop` (the oracle `drop:tdtm`, a speed baseline, not a method): the same shapes
    with no merge work, as tomesd's oracle: the first F'*S tokens in, the output's missing rows zero."""

    def __init__(self, inner: object, rule: TdtmRule) -> None:
        self.inner = inner
        self.rule = rule

    def __call__(self, attn: nn.Module, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, rotary_emb: tuple[torch.Tensor, ...] | None = None,
                 **kwargs) -> torch.Tensor:
        rule = self.rule
        rows = rule.merged * rule.tokens_per_frame
        if rule.drop:
            merged = hidden_states[:, :rows]  # (B, F'*S, C)
        else:
            merged = merge_frame_tokens(hidden_states, rule.frames, rule.odd)  # (B, F'*S, C)
        if rotary_emb is not None:
            rotary_emb = tuple(t[:, :rows] for t in rotary_emb)  # positions of latent frames 0..F'-1
        out = self.inner(attn, merged, encoder_hidden_states, attention_mask, rotary_emb, **kwargs)  # (B, F'*S, C)
        if rule.drop:
            return nn.functional.pad(out, (0, 0, 0, hidden_states.shape[1] - rows))  # (B, F*S, C)
        return unmerge_frame_tokens(out, rule.frames, rule.odd)  # (B, F*S, C)


def attention_modules(transformer: nn.Module) -> list[nn.Module]:
    """Every block's self- and cross-attention module (named attn1 / attn2 in Wan and LTX-Video)."""
    return [m for name, m in transformer.named_modules() if name.rsplit(".", 1)[-1] in ATTENTIONS]


def apply_tdtm(transformer: nn.Module, rule: TdtmRule) -> nn.Module:
    """Patch every attn1 / attn2 of `transformer` in place with the TDTM rule; returns it."""
    for attn in attention_modules(transformer):
        if isinstance(attn.processor, TdtmAttnProcessor):
            raise ValueError("TDTM is already applied to this transformer; remove_tdtm first")
        attn.processor = TdtmAttnProcessor(attn.processor, rule)
    return transformer


def remove_tdtm(transformer: nn.Module) -> nn.Module:
    """Undo apply_tdtm: every wrapped processor back in its place."""
    for attn in attention_modules(transformer):
        if isinstance(attn.processor, TdtmAttnProcessor):
            attn.processor = attn.processor.inner
    return transformer


def shared_twin(module: nn.Module) -> nn.Module:
    """A copy of `module`'s tree of modules (and their processors) holding the very same parameter and
    buffer tensors: patching the twin leaves `module` as it was, and no weight is copied."""
    memo = {id(t): t for t in (*module.parameters(), *module.buffers())}
    return copy.deepcopy(module, memo)


def tdtm_twin(transformer: nn.Module, rule: TdtmRule) -> nn.Module:
    """The transformer's weight-sharing twin with the TDTM rule applied."""
    return apply_tdtm(shared_twin(transformer), rule)


def _video_transformers_only(*args) -> None:
    """TDTM lives in diffusers' video transformer blocks (apply_tdtm), not in encoder layers."""
    raise SpecError("tdtm merges latent frames of diffusers video transformers (wan-tiny, wan21-t2v-1.3b, ltx-tiny, "
                    "ltx-video, a local Wan or LTX-Video folder), not transformer encoders")


def _parse(spec: str, body: str) -> TdtmParams:
    if body.strip():
        raise SpecError(f"merge spec {spec!r}: tdtm takes no options (its odd-frame mode is --tdtm-odd)")
    return TdtmParams()


TDTM = Method(
    name=METHOD, summary="TDTM (On-device Sora) on the full 3D attention of diffusers video transformers: latent "
                         "frame pairs averaged in self- and cross-attention; Wan 2.1 and LTX-Video",
    grammar="tdtm (diffusers video transformers)", parse=_parse, plan=_video_transformers_only,
    layer=_video_transformers_only, bare=True)  # its drop: twin (`drop:tdtm`) is TdtmRule(drop=True)
