"""Exportable wrappers around Hugging Face models, and the files that make an export folder
Hugging Face-shaped.

A single-model export holds the model's `config.json`, its preprocessor (vision) or tokenizer
(text) files, inputs named as the model's `forward()` names them (`pixel_values`, `input_ids`,
`attention_mask`) and outputs named as Hugging Face names them (`logits`, `last_hidden_state`,
`pooler_output`, `image_embeds`). tomobile's extra outputs (a sentence-transformers model's
`sentence_embedding`) sit beside them. Such a folder loads with optimum's ORTModel classes.
"""

from __future__ import annotations

import json

import torch
from torch import nn

from ..spec.config import MergeConfig
from .exportable import Exportable, ModelBundle, TensorSpec
from .hf_models import merge_plan

SENTENCE_EMBEDDING = "sentence_embedding"
# Example token ids are drawn from [FIRST_WORD_ID, vocab): BERT vocabularies keep padding,
# [unused] and special tokens below 1000.
FIRST_WORD_ID = 1000


class ImageModel(Exportable):
    """pixel_values (1, channels, S, S) -> the named outputs of a Hugging Face vision model, e.g.
    logits (1, labels), last_hidden_state (1, T', C) with T' the merged token count, pooler_output
    (1, C), image_embeds (1, P)."""

    def __init__(self, model: nn.Module, image_size: int, outputs: tuple[str, ...], channels: int = 3) -> None:
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.input_specs = (TensorSpec("pixel_values", (1, channels, image_size, image_size)),)
        self.output_names = outputs

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(pixel_values=pixel_values)
        return tuple(getattr(out, name) for name in self.output_names)


class TextModel(Exportable):
    """input_ids, attention_mask (1, L) int64 -> the named outputs of a BERT-style model: logits
    (1, labels) for a classifier; last_hidden_state (1, L, C), unmerged to full length, and
    pooler_output (1, C) for a backbone. With a `sentence_head` (a sentence-transformers model's
    Pooling, Dense and Normalize modules: graphs/models/sentence_modules.py) also `sentence_embedding`
    (1, D): what sentence-transformers computes from the token states."""

    def __init__(self, model: nn.Module, seq_len: int, vocab_size: int, outputs: tuple[str, ...],
                 sentence_head: nn.Module | None = None) -> None:
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.input_specs = (
            TensorSpec("input_ids", (1, seq_len), "int64", low=FIRST_WORD_ID, high=vocab_size),
            TensorSpec("attention_mask", (1, seq_len), "int64", low=1, high=2),
        )
        self.hf_outputs = outputs
        self.sentence_head = sentence_head
        self.output_names = outputs + ((SENTENCE_EMBEDDING,) if sentence_head is not None else ())

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask)
        results = tuple(getattr(out, name) for name in self.hf_outputs)
        if self.sentence_head is None:
            return results
        return (*results, self.sentence_head(out.last_hidden_state, attention_mask))  # (1, D)


def config_json(model_config, architecture: str) -> str:
    """The exported model's config.json: its Hugging Face config, naming the class it was exported
    from (what optimum and AutoConfig read)."""
    data = model_config.to_dict()
    data["architectures"] = [architecture]
    data.pop("_name_or_path", None)
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


_IMAGENET_HALF = [0.5, 0.5, 0.5]
_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def preprocessor_json(family: str, size: int, channels: int = 3) -> str:
    """preprocessor_config.json for a vision export without one of its own: the family's image
    processor defaults (as transformers writes them) at the exported input size, with one mean and
    std per input channel (a 1-channel model gets their averages and no RGB conversion: a
    3-value mean made AutoImageProcessor fail on its images)."""
    square = {"height": size, "width": size}
    common = {"do_resize": True, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True}
    if family == "clip":
        data = {"image_processor_type": "CLIPImageProcessor", **common, "size": {"shortest_edge": size},
                "resample": 3, "do_center_crop": True, "crop_size": square, "do_convert_rgb": True,
                "image_mean": _CLIP_MEAN, "image_std": _CLIP_STD}
    elif family == "deit":
        data = {"image_processor_type": "DeiTImageProcessor", **common, "size": square, "resample": 3,
                "do_center_crop": True, "crop_size": square, "image_mean": _IMAGENET_HALF, "image_std": _IMAGENET_HALF}
    else:
        data = {"image_processor_type": "ViTImageProcessor", **common, "size": square, "resample": 2,
                "image_mean": _IMAGENET_HALF, "image_std": _IMAGENET_HALF}
    if channels != 3:
        for key in ("image_mean", "image_std"):
            data[key] = [round(sum(data[key]) / len(data[key]), 8)] * channels
        if "do_convert_rgb" in data:
            data["do_convert_rgb"] = False
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def single_model_bundle(name: str, wrapper: Exportable, config: MergeConfig, **extra) -> ModelBundle:
    """A one-part bundle ('model') with the merge config and plan in its manifest."""
    plan = merge_plan(wrapper.model)
    manifest = {"merge": config.to_json(), "merge_spec": config.describe()}
    if plan is not None:
        manifest["plan"] = plan.to_json()
    return ModelBundle(name=name, parts={"model": wrapper}, manifest=manifest, **extra)
