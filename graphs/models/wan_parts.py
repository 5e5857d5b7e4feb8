"""A Wan transformer as ordered parts, for block streaming (On-device Sora's CI-DL): `--split blocks`.

Chained in order they compute the monolithic `transformer` (and `transformer_tdtm`):

    wan_embed         hidden_states (1, C, F, H, W), timestep (1,), encoder_hidden_states (1, L, text_dim)
                      -> h00 (1, N, D), text (1, L, D), timestep_proj (1, 6, D), temb (1, D)
    wan_block{k}      h{k}, text, timestep_proj -> h{k+1}   (k = 0 .. layers - 1; `_tdtm`: the TDTM twin's block)
    wan_head          h{layers}, temb -> out_hidden_states (1, C, F, H, W)

The embedders and the head are diffusers' own modules, called as WanTransformer3DModel.forward
calls them; each block part calls diffusers' own block with the frozen rotary tables the model
hands its blocks. The monolithic transformers are eager references only (not exported): the
export lowers one part (a block's plain and TDTM twins) at a time. A block's plain and TDTM parts hold the same weights (one file per format). Part
wrappers hold only the modules they use, so each part carries only its own weights.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import InputError
from .exportable import Exportable, ModelBundle, TensorSpec
from .video_parts import SPLIT_KINDS, chained_bundle, hidden_name
from .video_transformers import MERGED, PLAIN

PREFIX = "wan_"
Inputs = tuple[torch.Tensor, ...]


class WanEmbedPart(Exportable):
    """Patch embedding and the time / text embedders."""

    output_names = ("h00", "text", "timestep_proj", "temb")
    external_weights = True

    def __init__(self, transformer: nn.Module, specs: tuple[TensorSpec, ...]) -> None:
        super().__init__()
        self.patch_embedding, self.condition_embedder = transformer.patch_embedding, transformer.condition_embedder
        self.input_specs = specs

    def forward(self, hidden_states, timestep, encoder_hidden_states) -> Inputs:
        h = self.patch_embedding(hidden_states).flatten(2).transpose(1, 2).contiguous()  # (1, N, D)
        temb, proj, text, _ = self.condition_embedder(timestep, encoder_hidden_states, None)
        return h, text, proj.unflatten(1, (6, -1)), temb  # (1, N, D), (1, L, D), (1, 6, D), (1, D)


class WanBlockPart(Exportable):
    """One WanTransformerBlock (plain or with the TDTM patch): h{k} -> h{k+1}."""

    external_weights = True

    def __init__(self, transformer: nn.Module, k: int, specs: tuple[TensorSpec, ...]) -> None:
        super().__init__()
        self.block, self.rope = transformer.blocks[k], transformer.rope  # rope: the frozen tables
        self.input_specs = (TensorSpec(hidden_name(k), specs[0].shape), *specs[1:])
        self.output_names = (hidden_name(k + 1),)

    def forward(self, h, text, timestep_proj) -> Inputs:
        return (self.block(h, text, timestep_proj, self.rope()),)


class WanHeadPart(Exportable):
    """Output norm and projection, unpatchify."""

    output_names = ("out_hidden_states",)
    external_weights = True

    def __init__(self, transformer: nn.Module, layers: int, shape: tuple[int, ...], tokens: int) -> None:
        super().__init__()
        self.norm_out, self.proj_out = transformer.norm_out, transformer.proj_out
        self.scale_shift_table = transformer.scale_shift_table
        self.patch, self.latent = tuple(transformer.config.patch_size), shape[2:]
        d = transformer.config.num_attention_heads * transformer.config.attention_head_dim
        self.input_specs = (TensorSpec(hidden_name(layers), (1, tokens, d)), TensorSpec("temb", (1, d)))

    def forward(self, h, temb) -> Inputs:
        shift, scale = (self.scale_shift_table + temb.unsqueeze(1)).chunk(2, dim=1)  # (1, 1, D) each
        h = self.proj_out((self.norm_out(h.float()) * (1 + scale) + shift).type_as(h))  # (1, N, C*pt*ph*pw)
        (pt, ph, pw), (f, hh, ww) = self.patch, self.latent
        h = h.reshape(1, f // pt, hh // ph, ww // pw, pt, ph, pw, -1)  # (1, F', H', W', pt, ph, pw, C)
        return (h.permute(0, 7, 1, 4, 2, 5, 3, 6).flatten(6, 7).flatten(4, 5).flatten(2, 3),)  # (1, C, F, H, W)


def split_wan(bundle: ModelBundle, kind: str = "blocks") -> ModelBundle:
    """Add the ordered parts of `bundle`'s Wan transformers (plain and, with --merge tdtm, TDTM).

    The monolithic transformers are not exported (at 1.3B that would lower the whole model at
    once): they stay as eager references (ModelBundle.references), their test vectors what the
    chain of parts is checked against. The bundle's other parts (a pipeline's text encoder and
    VAE decoder) stay as they are."""
    if kind not in SPLIT_KINDS:
        raise InputError(f"unknown --split {kind!r}; allowed: {', '.join(SPLIT_KINDS)}")
    variants = {stem: w for stem, w in bundle.parts.items() if stem in (PLAIN, MERGED)}
    first = next(iter(variants.values()))
    plain = first.transformer
    specs = (TensorSpec(hidden_name(0), (1, first.tokens, _width(plain))),
             TensorSpec("text", (1, first.input_specs[2].shape[1], _width(plain))),
             TensorSpec("timestep_proj", (1, 6, _width(plain))))
    parts: dict[str, Exportable] = {f"{PREFIX}embed": WanEmbedPart(plain, first.input_specs).eval()}
    suffixes = {stem: stem.removeprefix(PLAIN) for stem in variants}  # "" or "_tdtm"
    for k in range(len(plain.blocks)):  # a block's variants one after the other: one weight group exports at a time
        for stem, wrapper in variants.items():
            parts[f"{PREFIX}block{k:02d}{suffixes[stem]}"] = WanBlockPart(wrapper.transformer, k, specs).eval()
    sequences = {stem: [f"{PREFIX}embed", *(f"{PREFIX}block{k:02d}{suffix}" for k in range(len(plain.blocks))),
                        f"{PREFIX}head"] for stem, suffix in suffixes.items()}
    layers = len(plain.blocks)
    parts[f"{PREFIX}head"] = WanHeadPart(plain, layers, first.input_specs[0].shape, first.tokens).eval()
    return chained_bundle(bundle, kind, parts, sequences, variants, export_monolithic=False)


def _width(transformer: nn.Module) -> int:
    return transformer.config.num_attention_heads * transformer.config.attention_head_dim
