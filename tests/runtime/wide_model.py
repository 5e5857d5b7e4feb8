"""The model the shared-weights memory tests load twice (test_ort_shared.py, test_weight_cache.py): a
trunk of Linear layers and a variant that also averages rows in pairs (a "merge"), so the two graphs
differ while their weights are the same tensors."""

from __future__ import annotations

import torch
from torch import nn

from tomobile.graphs.models.exportable import Exportable, TensorSpec

WIDTH, LAYERS = 512, 4  # 4.2 MB of fp32 weights: well above the process's own noise


class Wide(Exportable):
    output_names = ("y",)
    input_specs = (TensorSpec("x", (8, WIDTH)),)

    def __init__(self, layers: nn.ModuleList, merged: bool) -> None:
        super().__init__()
        self.layers, self.merged = layers, merged

    def forward(self, x):
        for layer in self.layers:
            x = torch.relu(layer(x))  # (8, WIDTH)
            if self.merged:
                x = (x + x.flip(0)) * 0.5  # a "merge": rows averaged in pairs
        return (x,)
