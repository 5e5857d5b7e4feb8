"""The graph rewrites that make XNNPACK take a whole program and compute it as eager does, one pass
per module, composed in one list (as executorch/exir/passes composes its own).

A pass either rewrites the ExportedProgram before it becomes an edge program (`Stage.PROGRAM`:
ExportedProgram -> ExportedProgram, in place where it can) or is handed to ExecuTorch's
`to_edge_transform_and_lower` as a transform pass on the edge graph (`Stage.EDGE`: GraphModule ->
PassResult; edge dialect ops such as expand_copy and select_copy exist only there). Order matters:
decompositions first (they create the products and scalars the later passes rewrite), constants
folded last before lowering.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

import torch

from .attention import attention_as_matmuls
from .expand_as_view import expand_as_view
from .float_scalars import int_scalars_as_floats
from .fold_constants import fold_constants
from .gelu import gelu_spelled_out
from .group_norm import group_norm_as_means
from .layer_norm import layer_norm_as_matmuls
from .pow import pow_as_products
from .select_as_slice import select_as_slice
from .split import split_as_slices
from .unsqueeze_as_view import unsqueeze_as_view
from .upsample import upsample_as_concat


class Stage(str, Enum):
    PROGRAM = "program"  # ExportedProgram -> ExportedProgram, before to_edge
    EDGE = "edge"  # edge GraphModule -> PassResult, inside to_edge_transform_and_lower


@dataclass(frozen=True)
class Pass:
    run: Callable
    stage: Stage = Stage.PROGRAM

    @property
    def name(self) -> str:
        return self.run.__name__


XNNPACK_PASSES: tuple[Pass, ...] = (
    Pass(layer_norm_as_matmuls),
    Pass(attention_as_matmuls),
    Pass(group_norm_as_means),
    Pass(gelu_spelled_out),
    Pass(pow_as_products),
    Pass(upsample_as_concat),
    Pass(split_as_slices),
    Pass(int_scalars_as_floats),
    Pass(fold_constants),
    Pass(expand_as_view, Stage.EDGE),
    Pass(select_as_slice, Stage.EDGE),
    Pass(unsqueeze_as_view, Stage.EDGE),
)


def run_program_passes(program: torch.export.ExportedProgram,
                       passes: tuple[Pass, ...] = XNNPACK_PASSES) -> torch.export.ExportedProgram:
    """Every PROGRAM pass of `passes`, in order."""
    for p in passes:
        if p.stage is Stage.PROGRAM:
            program = p.run(program)
    return program


def edge_passes(passes: tuple[Pass, ...] = XNNPACK_PASSES) -> list[Callable]:
    """The EDGE passes of `passes`, in order, as to_edge_transform_and_lower's transform_passes."""
    return [p.run for p in passes if p.stage is Stage.EDGE]
