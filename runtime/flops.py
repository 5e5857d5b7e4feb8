"""Analytic FLOP ratio of a merge plan: the unmerged model's multiply-accumulates over the merged one's.

Per layer with T tokens in and T' = T - r out (the merge sits between attention and the MLP):
attention costs 4*D^2*T (q, k, v, o projections) + 2*T^2*D (logits and context), the MLP
2*D*H*T' (two projections, H hidden units; a ViT's H = 4D gives 8*D^2*T'). Multiply-accumulates,
counted the same way for the merged and unmerged model, so their ratio is the FLOP ratio.
Patch embedding, head and the merge ops themselves are left out: they cost the same or little.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count


def layer_macs(tokens_in: int, tokens_out: int, width: int, mlp_hidden: int) -> float:
    """Multiply-accumulates of one transformer layer: attention on tokens_in, MLP on tokens_out."""
    t, d = float(tokens_in), float(width)
    return 4 * d * d * t + 2 * t * t * d + 2 * d * mlp_hidden * float(tokens_out)


def plan_macs(tokens: Sequence[int], width: int, mlp_hidden: int) -> float:
    """tokens: count entering each layer, then the count leaving the last (MergePlan.tokens)."""
    return sum(layer_macs(tokens[i], tokens[i + 1], width, mlp_hidden) for i in range(len(tokens) - 1))


def flop_ratio(tokens: Sequence[int], width: int, mlp_hidden: int) -> float:
    """FLOPs of the unmerged model over FLOPs of the plan with these token counts (>= 1)."""
    base = [tokens[0]] * len(tokens)
    return plan_macs(base, width, mlp_hidden) / plan_macs(tokens, width, mlp_hidden)


def constant_r_tokens(tokens: int, layers: int, r: int) -> list[int]:
    """Token counts of a constant-r plan: [T, T - r, T - 2r, ...] (layers + 1 entries)."""
    return [tokens - r * i for i in range(layers + 1)]


def _cpu_sdpa_flops(query_shape, key_shape, value_shape, *args, **kwargs) -> int:
    """torch's formula for the CPU flash-attention op, which its flop counter has no entry for."""
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def module_flops(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> float:
    """FLOPs of one forward of `module`, counted by torch's flop counter on fake tensors (shapes
    only, no arithmetic: an SD-1.5-size UNet costs nothing). For models whose plan is not a list of
    encoder layers (diffusers UNets): the ratio of two such counts is their FLOP ratio."""
    mapping = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flops}
    with torch.no_grad(), FakeTensorMode(allow_non_fake_inputs=True) as mode, \
            FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        module(*(mode.from_tensor(x) for x in inputs))
    return float(counter.get_total_flops())
