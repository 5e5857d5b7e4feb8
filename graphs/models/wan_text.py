"""WanPipeline's text encoder as an exportable static-shape module (its VAE decoder: graphs/models/wan_vae.py).

    WanTextEncoder  UMT5 encoder: input_ids, attention_mask (1, L) int64 -> prompt_embeds (1, L, D),
                    zeroed past the prompt's token count as WanPipeline zeroes them
"""

from __future__ import annotations

import torch
from torch import nn

from .exportable import Exportable, TensorSpec


def zero_past_length(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """WanPipeline's text states: rows at positions >= the prompt's token count set to zero.

    states (B, L, D), mask (B, L) (1 real, 0 padding); the count is the mask's sum, as
    WanPipeline's `seq_lens = mask.gt(0).sum(dim=1)`, and the zeros are +0.0, as its new_zeros."""
    keep = torch.arange(states.shape[1]) < mask.gt(0).sum(dim=1, keepdim=True)  # (B, L)
    return torch.where(keep[..., None], states, torch.zeros((), dtype=states.dtype))


class WanTextEncoder(Exportable):
    """WanPipeline's text encoder (transformers' UMT5EncoderModel) at a fixed text length, with
    WanPipeline's zeroing of the states past the prompt.

    It switches the encoder it is given to transformers' "eager" attention (the same math as the
    default "sdpa"): with torch 2.13 the sdpa path's transpose + reshape becomes a view of a
    non-contiguous tensor in ONNX's decomposition, and the export fails."""

    output_names = ("prompt_embeds",)
    # ExecuTorch 1.5.1's XNNPACK delegate lowers UMT5 but fails it at run time ("Propagating input
    # shapes failed", invalid parameter); the portable backend runs it within 9.5e-7 of eager.
    executorch_backend = "portable"

    def __init__(self, encoder: nn.Module, length: int) -> None:
        super().__init__()
        encoder.set_attn_implementation("eager")
        self.encoder = encoder
        self.length = length
        vocab = int(encoder.config.vocab_size)
        self.input_specs = (
            TensorSpec("input_ids", (1, length), "int64", 0, vocab),
            TensorSpec("attention_mask", (1, length), "int64", 1, 2),
        )

    def example_inputs(self, seed: int = 0) -> tuple[torch.Tensor, ...]:
        """Random ids with a prompt of length//2 + 1 tokens, right padding (as the tokenizer pads)."""
        gen = torch.Generator().manual_seed(seed)
        ids = self.input_specs[0].example(gen)
        mask = (torch.arange(self.length) < self.length // 2 + 1).long()[None]  # (1, L)
        return ids * mask, mask

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor]:
        states = self.encoder(input_ids, attention_mask).last_hidden_state  # (1, L, D)
        return (zero_past_length(states, attention_mask),)
