"""`apply_merge` / `remove_merge` for Hugging Face ViT, DeiT, CLIP vision and BERT-style encoders.

A patch replaces one backbone module's `forward` with a ToMe forward (an instance attribute, so
`remove_merge` deletes it and the class's own forward is back). No module is added, removed or
renamed: state-dict keys are unchanged and the same weights load before and after. What the
patched forwards change from the originals:

- ViT / DeiT backbone (`ViTModel`, `DeiTModel`): the layer loop carries token sizes (and
  optionally sources); from the first merging layer on, attention adds log(size) to its logits and
  r tokens merge between attention and MLP. `last_hidden_state` has the merged token count
  (class token first; DeiT's distillation token second, as ToMe orders them).
- CLIP vision encoder (`CLIPEncoder` under `CLIPVisionModel`): the same, inside the encoder.
- SigLIP vision encoder (`SiglipEncoder` under `SiglipVisionModel`): the same with no class token
  (nothing is protected; the attention-pool head reads every merged token). Merged or not, the
  attention-pool head gets its static export spelling (graphs/models/siglip_head.py; eager unchanged).
- DINOv2 (`Dinov2Model`, `Dinov2WithRegistersModel`): the ViT loop with DINOv2's layer scales;
  the class and register tokens are protected; positions are interpolated by the model's own
  embeddings at the exported size; pooler_output is the class token, as the original.
- BERT encoders (`BertModel`, e.g. MiniLM): padding never merges into real tokens (its mask
  follows the merge), and `last_hidden_state` is unmerged back to the input length so mean
  pooling over the original mask works unchanged.

A plan that merges nothing leaves forward untouched, so r=0 reproduces the original bit for bit.
Both transformers lines are supported: 5.x names ViT's modules `layers[i].attention.q_proj` and
`mlp`, 4.57 `encoder.layer[i].attention.attention.query` and `intermediate`/`output`; the family
adapters below find them in either layout (CLIP and BERT kept theirs).
"""

from __future__ import annotations

import functools
import inspect
import types
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from transformers.modeling_outputs import BaseModelOutput, BaseModelOutputWithPooling

from ..methods.layers import AttentionParts, LayerFns, TokenState, attention, initial_state
from ..methods.merge import ARITHMETIC, unmerge
from ..methods.ops import OPS_ATTR, MergeOps, merge_ops_of
from ..methods.plan import MergePlan
from ..methods.registry import make_plan, merged_layer
from ..spec.config import MergeConfig
from .siglip_head import apply_static_pool, remove_static_pool

_PLAN_ATTR = "_tomobile_plan"


def _pre_ln_layer(parts: AttentionParts, out_proj: nn.Module, norm1: nn.Module, norm2: nn.Module,
                  mlp: Callable[[torch.Tensor], torch.Tensor]) -> LayerFns:
    """x + attn(norm1(x)), then x + mlp(norm2(x)): the ViT, DeiT and CLIP layer."""

    def attend(x: torch.Tensor, bias: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ctx, keys, probs = attention(parts, norm1(x), bias)
        return x + out_proj(ctx), keys, probs

    return LayerFns(attend, lambda x: x + mlp(norm2(x)))


def _vit_layer(layer: nn.Module) -> LayerFns:
    """transformers 5 (`attention.q_proj`, `mlp`) or 4.x (`attention.attention.query`, `intermediate`/`output`)."""
    a = layer.attention
    if hasattr(a, "q_proj"):  # transformers 5
        parts = AttentionParts(a.q_proj, a.k_proj, a.v_proj, a.num_attention_heads, a.head_dim, a.scaling)
        return _pre_ln_layer(parts, a.o_proj, layer.layernorm_before, layer.layernorm_after, layer.mlp)
    sa = a.attention  # transformers 4.x: ViTSelfAttention, then ViTSelfOutput.dense
    parts = AttentionParts(sa.query, sa.key, sa.value, sa.num_attention_heads, sa.attention_head_size,
                           sa.attention_head_size ** -0.5)

    def mlp(h: torch.Tensor) -> torch.Tensor:
        return layer.output.dense(layer.intermediate(h))  # ViTOutput.forward would add the residual too

    return _pre_ln_layer(parts, a.output.dense, layer.layernorm_before, layer.layernorm_after, mlp)


def _clip_layer(layer: nn.Module) -> LayerFns:
    a = layer.self_attn
    parts = AttentionParts(a.q_proj, a.k_proj, a.v_proj, a.num_heads, a.head_dim, a.scale)
    return _pre_ln_layer(parts, a.out_proj, layer.layer_norm1, layer.layer_norm2, layer.mlp)


def _dinov2_layer(layer: nn.Module) -> LayerFns:
    """x + ls1(attn(norm1(x))), then x + ls2(mlp(norm2(x))): DINOv2's layer with its layer scales."""
    a = layer.attention
    parts = AttentionParts(a.q_proj, a.k_proj, a.v_proj, a.num_attention_heads, a.head_dim, a.scaling)

    def attend(x: torch.Tensor, bias: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ctx, keys, probs = attention(parts, layer.norm1(x), bias)
        return x + layer.layer_scale1(a.o_proj(ctx)), keys, probs

    return LayerFns(attend, lambda x: x + layer.layer_scale2(layer.mlp(layer.norm2(x))))


def _bert_layer(layer: nn.Module) -> LayerFns:
    sa, out = layer.attention.self, layer.attention.output
    parts = AttentionParts(sa.query, sa.key, sa.value, sa.num_attention_heads, sa.attention_head_size,
                           sa.attention_head_size ** -0.5)  # `scaling` exists only in transformers 5

    def attend(x: torch.Tensor, bias: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ctx, keys, probs = attention(parts, x, bias)
        return out.LayerNorm(out.dense(ctx) + x), keys, probs  # post-LN residual

    return LayerFns(attend, lambda h: layer.output(layer.intermediate(h), h))


def vit_layers(backbone: nn.Module) -> nn.ModuleList:
    """The layers of a ViTModel/DeiTModel (`layers` in transformers 5, `encoder.layer` in 4.x) or a CLIPEncoder."""
    return backbone.layers if hasattr(backbone, "layers") else backbone.encoder.layer


@functools.cache
def _takes_causal_mask(cls: type) -> bool:
    return "causal_attention_mask" in inspect.signature(cls.forward).parameters


def _plain(layer: nn.Module, h: torch.Tensor) -> torch.Tensor:
    """A ViT/CLIP layer's own forward, unmasked. transformers 4.x CLIP layers also take a causal
    mask and return a tuple; 5.x layers return the tensor."""
    out = layer(h, None, None) if _takes_causal_mask(type(layer)) else layer(h, None)
    return out[0] if isinstance(out, tuple) else out


def _run(layers: nn.ModuleList, fns: Any, state: TokenState, plan: MergePlan, plain: Any,
         ops: MergeOps = ARITHMETIC) -> TokenState:
    """Layers before the first merge run their original forward (`plain`); the rest run merged,
    spelled by `ops` (the patched backbone's, OPS_ATTR)."""
    for i, layer in enumerate(layers):
        if plain is not None and i < plan.first_merge:
            state = state._replace(x=plain(layer, state.x))
        else:
            state = merged_layer(fns(layer), state, i, plan, ops)
    return state


def _vit_forward(self: nn.Module, pixel_values: torch.Tensor, bool_masked_pos: Any = None,
                 interpolate_pos_encoding: bool | None = None, attention_mask: Any = None,
                 **kwargs: Any) -> BaseModelOutputWithPooling:
    """ViTModel/DeiTModel.forward with ToMe (see module docstring)."""
    plan: MergePlan = getattr(self, _PLAN_ATTR)
    x = self.embeddings(pixel_values, bool_masked_pos=bool_masked_pos,
                        interpolate_pos_encoding=bool(interpolate_pos_encoding))  # (B, T, C)
    state = _run(vit_layers(self), _vit_layer, initial_state(x, None, plan.trace_source), plan, _plain,
                 merge_ops_of(self))
    sequence_output = self.layernorm(state.x)  # (B, T', C)
    pooled = self.pooler(sequence_output) if self.pooler is not None else None
    return BaseModelOutputWithPooling(last_hidden_state=sequence_output, pooler_output=pooled)


def _clip_encoder_forward(self: nn.Module, inputs_embeds: torch.Tensor, attention_mask: Any = None,
                          **kwargs: Any) -> BaseModelOutput:
    """CLIPEncoder.forward (and SiglipEncoder.forward: the same layer) with the merge (see module docstring)."""
    plan: MergePlan = getattr(self, _PLAN_ATTR)
    state = _run(self.layers, _clip_layer, initial_state(inputs_embeds, None, plan.trace_source), plan, _plain,
                 merge_ops_of(self))
    return BaseModelOutput(last_hidden_state=state.x)


def _dinov2_forward(self: nn.Module, pixel_values: torch.Tensor, bool_masked_pos: Any = None, attention_mask: Any = None,
                    **kwargs: Any) -> BaseModelOutputWithPooling:
    """Dinov2Model / Dinov2WithRegistersModel.forward with the merge; pooler_output is the class token."""
    plan: MergePlan = getattr(self, _PLAN_ATTR)
    x = self.embeddings(pixel_values, bool_masked_pos=bool_masked_pos)  # (B, T, C), positions at this size
    state = _run(self.encoder.layer, _dinov2_layer, initial_state(x, None, plan.trace_source), plan, _plain,
                 merge_ops_of(self))
    sequence_output = self.layernorm(state.x)  # (B, T', C)
    return BaseModelOutputWithPooling(last_hidden_state=sequence_output, pooler_output=sequence_output[:, 0, :])


def _bert_forward(self: nn.Module, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                  token_type_ids: torch.Tensor | None = None, **kwargs: Any) -> BaseModelOutputWithPooling:
    """BertModel.forward with ToMe, padding-aware and unmerged at the end (see module docstring)."""
    plan: MergePlan = getattr(self, _PLAN_ATTR)
    if token_type_ids is None:
        token_type_ids = torch.zeros_like(input_ids)
    x = self.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)  # (B, T, C)
    valid = torch.ones(x.shape[:2], dtype=x.dtype) if attention_mask is None else attention_mask.to(x.dtype)
    state = initial_state(x, valid, trace_source=True)
    state = _run(self.encoder.layer, _bert_layer, state, plan, None, merge_ops_of(self))
    tokens = unmerge(state.source, state.x)  # (B, T, C): every input token gets its merged value
    pooled = self.pooler(tokens) if self.pooler is not None else None
    return BaseModelOutputWithPooling(last_hidden_state=tokens, pooler_output=pooled)


def _find_backbone(model: nn.Module) -> tuple[nn.Module, str]:
    """The module whose forward the patch replaces, and its family."""
    from transformers.models.bert.modeling_bert import BertModel
    from transformers.models.clip.modeling_clip import CLIPEncoder, CLIPVisionModel
    from transformers.models.deit.modeling_deit import DeiTModel
    from transformers.models.dinov2.modeling_dinov2 import Dinov2Model
    from transformers.models.dinov2_with_registers.modeling_dinov2_with_registers import Dinov2WithRegistersModel
    from transformers.models.siglip.modeling_siglip import SiglipEncoder, SiglipVisionModel
    from transformers.models.vit.modeling_vit import ViTModel

    for module in model.modules():
        if isinstance(module, (ViTModel, DeiTModel)):
            return module, "deit" if isinstance(module, DeiTModel) else "vit"
        if isinstance(module, CLIPVisionModel):  # its encoder: `vision_model.encoder` in 4.x, `encoder` in 5.x
            return next(m for m in module.modules() if isinstance(m, CLIPEncoder)), "clip"
        if isinstance(module, CLIPEncoder):
            return module, "clip"
        if isinstance(module, (Dinov2Model, Dinov2WithRegistersModel)):
            return module, "dinov2"
        if isinstance(module, SiglipVisionModel):  # no class token; the attention-pool head reads every token
            return module.encoder if isinstance(module.encoder, SiglipEncoder) else module.vision_model.encoder, "siglip"
        if isinstance(module, BertModel):
            return module, "bert"
    raise TypeError(
        f"{type(model).__name__} is not supported; supported: ViT, DeiT, CLIP vision, SigLIP vision, DINOv2, BERT-style encoders"
    )


def _token_count(model: nn.Module, family: str, seq_len: int | None) -> int:
    if family == "bert":
        if seq_len is None:
            raise ValueError("a BERT-style encoder needs seq_len when patched: token counts are static")
        return seq_len
    cfg = model.config
    cfg = getattr(cfg, "vision_config", cfg)
    patches = (cfg.image_size // cfg.patch_size) ** 2
    return patches + {"deit": 2, "siglip": 0}.get(family, 1) + getattr(cfg, "num_register_tokens", 0)


_FORWARDS = {"vit": _vit_forward, "deit": _vit_forward, "clip": _clip_encoder_forward, "siglip": _clip_encoder_forward,
             "dinov2": _dinov2_forward, "bert": _bert_forward}


def apply_merge(model: nn.Module, config: MergeConfig, seq_len: int | None = None,
                ops: MergeOps = ARITHMETIC) -> nn.Module:
    """Patch `model` in place with the merge `config` names; returns it. Reverse with `remove_merge`.

    The plan (r and token count per layer) is computed here; a schedule that asks more of a
    layer than it allows raises SpecError. `seq_len` is required for BERT-style encoders. `ops`
    spells the merge (graphs/methods/ops.py); an exporter traces another spelling with `using_ops`.
    """
    remove_merge(model)
    backbone, family = _find_backbone(model)
    layers = backbone.encoder.layer if family in ("bert", "dinov2") else vit_layers(backbone)  # CLIPEncoder: `layers`
    plan = make_plan(config, len(layers), _token_count(model, family, seq_len),
                     class_token=family != "siglip", distill_token=family == "deit", padded=family == "bert",
                     registers=getattr(model.config, "num_register_tokens", 0) if family == "dinov2" else 0)
    setattr(backbone, _PLAN_ATTR, plan)
    setattr(backbone, OPS_ATTR, ops)
    if family == "siglip":  # merged or not: its pool head as ExecuTorch runs it, in graphs traced for a file
        apply_static_pool(model, ops)
    if plan.merges:
        backbone.forward = types.MethodType(_FORWARDS[family], backbone)
    return model


def remove_merge(model: nn.Module) -> nn.Module:
    """Undo `apply_merge`: the class forwards are back; weights were never touched."""
    remove_static_pool(model)
    for module in model.modules():
        if hasattr(module, _PLAN_ATTR):
            delattr(module, _PLAN_ATTR)
            module.__dict__.pop(OPS_ATTR, None)
            module.__dict__.pop("forward", None)
    return model


def merge_plan(model: nn.Module) -> MergePlan | None:
    """The plan `apply_merge` installed, or None for an unpatched model."""
    for module in model.modules():
        plan = getattr(module, _PLAN_ATTR, None)
        if plan is not None:
            return plan
    return None
