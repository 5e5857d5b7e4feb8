"""The guided video denoiser as ordered parts, for block streaming (On-device Sora's CI-DL).

`tomobile export MODEL --split blocks` adds these parts beside the monolithic denoisers. Chained in
order they compute `guided_velocity` (graphs/models/video_zoo.py), one batch of 2 (caption, null caption):

    embed              x (1, 3, T, H, W), t (1,), states (1, L, Dy), mask (1, L)
                       -> h00 (2, T*S, D), caption (2, L, D), caption_bias (2, 1, 1, L), t0 (2, 6D), t_emb (2, D)
    block k            h{k} (2, T*S, D), caption, caption_bias, t0 -> h{k+1} (2, T*S, D)
                       k = 0 .. 2*depth-1: spatial block k/2 for even k, temporal block k/2 for odd k
    final              h{2*depth}, t_emb, x, t, guidance (1,) -> velocity (1, 3, T, H, W)

Each block part calls the model's own STBlock with a fixed VideoMerge, and its RoPE tables are the
model's buffers, so a change to the blocks or their merges reaches the parts unchanged. Merged
variants exist per block where the merge changes that block: TDTM for both kinds, spatial ToMe for
spatial blocks only (a temporal block's `_tome` variant would be the plain one, so there is none).
Part wrappers hold only the submodules they use: each exported part carries only its own weights.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import replace

import torch

from ..errors import InputError
from ..methods.merge import ARITHMETIC, MASK_BIAS
from ..methods.ops import OPS_ATTR, merge_ops_of
from .exportable import Exportable, ModelBundle, TensorSpec
from .video_dit import T_FLOOR, STBlock, VideoDiT, VideoMerge, modulate, timestep_embedding
from .video_zoo import GuidedDenoiser

SPLIT_KINDS = ("blocks",)
PART_PREFIX = "dit_"
SPLIT_MODELS = ("video-dit-tiny", "video-dit-micro", "video-dit-large")  # the built-in models with a video denoiser
Inputs = tuple[torch.Tensor, ...]


def hidden_name(k: int) -> str:
    """Name of the token states entering block k (and leaving block k - 1)."""
    return f"h{k:02d}"


def block_part_name(model: VideoDiT, k: int, merge: VideoMerge) -> str:
    """dit_spatial00, dit_temporal00_tdtm, dit_spatial01_tdtm_tome, ... for block k under `merge`."""
    temporal = k % 2 == 1
    suffix = ("_tdtm" if merge.tdtm else "") + ("_tome" if merge.spatial.ratio > 0 and not temporal else "")
    return f"{PART_PREFIX}{'temporal' if temporal else 'spatial'}{k // 2:02d}{suffix}"


def rope_for(model: VideoDiT, merge: VideoMerge) -> tuple[torch.Tensor, torch.Tensor]:
    """The RoPE tables VideoDiT.forward hands its blocks for this merge (the model's buffers)."""
    if merge.tdtm:
        return model.rope_cos_tdtm, model.rope_sin_tdtm
    return model.rope_cos_full, model.rope_sin_full


class EmbedPart(Exportable):
    """Patch, position, frame, timestep and caption embedders for the batch of 2 (caption, null)."""

    output_names = ("h00", "caption", "caption_bias", "t0", "t_emb")
    external_weights = True

    def __init__(self, model: VideoDiT, specs: tuple[TensorSpec, ...]) -> None:
        super().__init__()
        cfg = model.cfg
        self.cfg = cfg
        self.input_specs = specs[:4]  # x, t, states, mask
        self.x_embedder, self.t_embedder, self.t_block = model.x_embedder, model.t_embedder, model.t_block
        self.y_embedder, self.y_null = model.y_embedder, model.y_null
        self.y_pooled = model.y_pooled if cfg.pooled_caption else None
        self.register_buffer("pos_embed", model.pos_embed, persistent=False)  # (S, D)
        if cfg.frame_pos:
            self.register_buffer("frame_embed", model.frame_embed, persistent=False)  # (T, 1, D)

    def forward(self, x, t, states, mask) -> Inputs:
        cfg, d = self.cfg, self.cfg.hidden
        y = torch.cat([states, self.y_null[None].to(states.dtype)], dim=0)  # (2, L, Dy)
        m = torch.cat([mask.to(states.dtype), torch.ones_like(mask, dtype=states.dtype)], dim=0)  # (2, L)
        x, t = torch.cat([x, x], dim=0), torch.cat([t, t], dim=0)  # (2, 3, T, H, W), (2,)
        h = self.x_embedder(VideoDiT.patchify(self, x)) + self.pos_embed  # (2, T, S, D)
        if cfg.frame_pos:
            h = h + self.frame_embed
        h = h.reshape(2, cfg.frames * cfg.tokens, d)  # (2, T*S, D)
        t_emb = self.t_embedder(timestep_embedding(t, d))  # (2, D)
        if self.y_pooled is not None:
            w = m.to(y.dtype)[:, :, None]  # (2, L, 1)
            t_emb = t_emb + self.y_pooled((y * w).sum(dim=1) / w.sum(dim=1).clamp(min=1.0))  # (2, D)
        bias = ((1.0 - m.float()) * MASK_BIAS)[:, None, None, :]  # (2, 1, 1, L)
        return h, self.y_embedder(y), bias, self.t_block(t_emb), t_emb


class BlockPart(Exportable):
    """One STBlock (spatial or temporal) under a fixed merge: h{k} -> h{k+1}, spelled by the ops it
    holds (OPS_ATTR, as GuidedDenoiser)."""

    external_weights = True

    def __init__(self, model: VideoDiT, block: STBlock, k: int, merge: VideoMerge) -> None:
        super().__init__()
        cfg = model.cfg
        self.block, self.merge = block, merge
        setattr(self, OPS_ATTR, ARITHMETIC)
        cos, sin = rope_for(model, merge)
        self.register_buffer("rope_cos", cos, persistent=False)  # (T or T', hd)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.output_names = (hidden_name(k + 1),)
        self.input_specs = (
            TensorSpec(hidden_name(k), (2, cfg.frames * cfg.tokens, cfg.hidden)),
            TensorSpec("caption", (2, cfg.caption_len, cfg.hidden)),
            TensorSpec("caption_bias", (2, 1, 1, cfg.caption_len)),
            TensorSpec("t0", (2, 6 * cfg.hidden)),
        )

    def forward(self, h, caption, caption_bias, t0) -> Inputs:
        return (self.block(h, caption, caption_bias, t0, self.merge, (self.rope_cos, self.rope_sin),
                           merge_ops_of(self)),)


class FinalPart(Exportable):
    """Final layer, unpatchify, x-prediction to velocity, classifier-free guidance."""

    output_names = ("velocity",)
    external_weights = True

    def __init__(self, model: VideoDiT, specs: tuple[TensorSpec, ...]) -> None:
        super().__init__()
        cfg = model.cfg
        self.cfg = cfg
        self.final_norm, self.final_table, self.final_linear = model.final_norm, model.final_table, model.final_linear
        x, t, guidance = specs[0], specs[1], specs[4]
        self.input_specs = (TensorSpec(hidden_name(2 * cfg.depth), (2, cfg.frames * cfg.tokens, cfg.hidden)),
                            TensorSpec("t_emb", (2, cfg.hidden)), x, t, guidance)

    def forward(self, h, t_emb, x, t, guidance) -> Inputs:
        cfg = self.cfg
        shift, scale = (self.final_table[None] + t_emb[:, None]).chunk(2, dim=1)  # (2, 1, D) each
        out = self.final_linear(modulate(self.final_norm(h), shift, scale))  # (2, T*S, C*p*p)
        v = VideoDiT.unpatchify(self, out.reshape(2, cfg.frames, cfg.tokens, -1))  # (2, C, T, H, W)
        if cfg.x0_prediction:
            v = (torch.cat([x, x], dim=0) - v) / torch.cat([t, t], dim=0).clamp(min=T_FLOOR).reshape(2, 1, 1, 1, 1)
        return (v[1:] + guidance.reshape(1, 1, 1, 1, 1) * (v[:1] - v[1:]),)  # (1, C, T, H, W)


class ChainInputs:
    """Each part's inputs on the eager chain from one denoiser input tuple (the matching slice of
    the eager model): part k sees what eager parts 0..k-1 computed, so every part is validated on
    the activations it meets in the monolithic run. Computed once per (variant, case)."""

    def __init__(self, sequences: dict[str, list[str]], parts: dict[str, Exportable],
                 denoiser_inputs: dict[str, Callable[[int], Inputs]],
                 input_names: tuple[str, ...] = ("x", "t", "states", "mask", "guidance")) -> None:
        self.sequences, self.parts, self.denoiser_inputs = sequences, parts, denoiser_inputs
        self.input_names = input_names  # the monolithic model's inputs, the chain's first names
        self.cache: dict[tuple[str, object], dict[str, torch.Tensor]] = {}

    def env(self, variant: str, case: object) -> dict[str, torch.Tensor]:
        """Every named tensor of the chain (inputs and outputs of each part), for seed or 'real'."""
        key = (variant, case)
        if key not in self.cache:
            wrapper_inputs = self.denoiser_inputs[variant](case)
            env = dict(zip(self.input_names, wrapper_inputs, strict=True))
            self.cache[key] = run_chain(self.parts, self.sequences[variant], env)
        return self.cache[key]

    def first_variant(self, part: str) -> str:
        return next(v for v, seq in self.sequences.items() if part in seq)

    def inputs_for(self, part: str, case: object) -> Inputs:
        env = self.env(self.first_variant(part), case)
        return tuple(env[s.name] for s in self.parts[part].input_specs)


def _bind_example_inputs(wrapper: Exportable, chain: ChainInputs, name: str) -> None:
    wrapper.example_inputs = lambda seed=0: chain.inputs_for(name, seed)  # type: ignore[method-assign]


def chained_bundle(bundle: ModelBundle, kind: str, parts: dict[str, Exportable], sequences: dict[str, list[str]],
                   monolithic: dict[str, Exportable], export_monolithic: bool = True) -> ModelBundle:
    """`bundle` with the ordered `parts` added and `split.sequences` (each monolithic part's ordered
    part names) in its manifest; each part's example (and real) inputs are what the eager chain
    feeds it. The monolithic parts are the reference the chain is checked against: exported as
    well, or (`export_monolithic` False) kept as eager references only, their test vectors written
    and nothing lowered (ModelBundle.references)."""
    names = next(iter(monolithic.values())).input_specs
    chain = ChainInputs(sequences, parts, {stem: functools.partial(_denoiser_case, bundle, stem, w)
                                           for stem, w in monolithic.items()}, tuple(s.name for s in names))
    real = dict(bundle.real_inputs)
    for name, part in parts.items():
        _bind_example_inputs(part, chain, name)
        if chain.first_variant(name) in bundle.real_inputs:
            real[name] = functools.partial(chain.inputs_for, name, "real")
    split = {"kind": kind, "sequences": sequences, "reference": "exported" if export_monolithic else "eager"}
    manifest = {**bundle.manifest, "split": split}
    kept = {s: w for s, w in bundle.parts.items() if export_monolithic or s not in monolithic}
    references = {**bundle.references, **({} if export_monolithic else monolithic)}
    return replace(bundle, parts={**kept, **parts}, manifest=manifest, real_inputs=real, references=references)


def split_denoisers(bundle: ModelBundle, kind: str = "blocks") -> ModelBundle:
    """Add the parts of every guided denoiser in `bundle` and the part order per denoiser variant.

    The monolithic denoisers stay (the reference the chain is checked against); the manifest's
    `split.sequences` maps each variant to its ordered part names.
    """
    if kind not in SPLIT_KINDS:
        raise InputError(f"unknown --split {kind!r}; allowed: {', '.join(SPLIT_KINDS)}")
    denoisers = {stem: w for stem, w in bundle.parts.items() if isinstance(w, GuidedDenoiser)}
    if not denoisers:
        raise InputError(f"--split blocks needs a video denoiser; {bundle.name} has none "
                         f"(split models: {', '.join(SPLIT_MODELS)}, Wan transformers)")
    model = next(iter(denoisers.values())).model
    specs = next(iter(denoisers.values())).input_specs
    parts: dict[str, Exportable] = {f"{PART_PREFIX}embed": EmbedPart(model, specs).eval()}
    sequences: dict[str, list[str]] = {}
    blocks = [b for pair in zip(model.spatial_blocks, model.temporal_blocks, strict=True) for b in pair]
    for stem, wrapper in denoisers.items():
        seq = [f"{PART_PREFIX}embed"]
        for k, block in enumerate(blocks):
            name = block_part_name(model, k, wrapper.merge)
            if name not in parts:
                parts[name] = BlockPart(model, block, k, wrapper.merge).eval()
            seq.append(name)
        sequences[stem] = [*seq, f"{PART_PREFIX}final"]
    parts[f"{PART_PREFIX}final"] = FinalPart(model, specs).eval()
    return chained_bundle(bundle, kind, parts, sequences, denoisers)


def _denoiser_case(bundle: ModelBundle, stem: str, wrapper: Exportable, case: object) -> Inputs:
    """The monolithic denoiser's inputs for a seed or for 'real' (the bundle's real inputs)."""
    if case == "real":
        return bundle.real_inputs[stem]()
    return wrapper.example_inputs(seed=int(case))


def run_chain(parts: dict[str, Exportable], sequence: list[str], env: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Run `sequence` eagerly: each part reads its inputs by name from `env` (the denoiser's x, t,
    states, mask, guidance to begin with) and adds its outputs. Returns the grown copy of `env`."""
    env = dict(env)
    with torch.no_grad():
        for name in sequence:
            part = parts[name]
            env.update(zip(part.output_names, part(*(env[s.name] for s in part.input_specs)), strict=True))
    return env
