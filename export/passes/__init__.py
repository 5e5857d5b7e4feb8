"""The graph rewrites that make XNNPACK take a whole program and compute it as eager does, one pass
per module, composed in one list (as executorch/exir/passes composes its own).

A pass is a decomposition-table entry (`Stage.DECOMPOSE`: {op: function}; a function that returns
NotImplemented leaves that call of the op as it is), a rewrite of the
ExportedProgram before it becomes an edge program (`Stage.PROGRAM`: ExportedProgram ->
ExportedProgram, in place where it can), or a transform pass on the edge graph that ExecuTorch's
`to_edge_transform_and_lower` runs (`Stage.EDGE`: GraphModule -> PassResult; edge dialect ops such
as expand_copy and select_copy exist only there). The decompositions run together, in one
`run_decompositions` retrace: one after another, a view traced against the strides of one
decomposition's output broke the next (sd-unet-tiny: attention's after layer norm's). Then the
program rewrites in order (they rewrite the products and scalars the decompositions create),
constants folded last before lowering.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

import torch

from . import (
    attention,
    conv3d,
    drop_identities,
    expand_as_broadcast,
    expand_as_view,
    float_scalars,
    fold_constants,
    gelu,
    group_norm,
    layer_norm,
    mean,
    permute_on_fewer_axes,
    pow,
    repeat_interleave,
    rms_norm,
    select_as_slice,
    split,
    squeeze_as_view,
    unbind,
    unsqueeze_as_view,
    upsample,
)


class Stage(str, Enum):
    DECOMPOSE = "decompose"  # {aten op: function}, all run in one run_decompositions
    PROGRAM = "program"  # ExportedProgram -> ExportedProgram, before to_edge
    EDGE = "edge"  # edge GraphModule -> PassResult, inside to_edge_transform_and_lower


@dataclass(frozen=True)
class Pass:
    run: Callable | dict
    stage: Stage = Stage.PROGRAM
    name: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", getattr(self.run, "__name__", ""))


XNNPACK_PASSES: tuple[Pass, ...] = (
    Pass(drop_identities.drop_identities),
    Pass(layer_norm.LAYER_NORM_AS_MATMULS, Stage.DECOMPOSE, "layer_norm_as_matmuls"),
    Pass(attention.ATTENTION_AS_MATMULS, Stage.DECOMPOSE, "attention_as_matmuls"),
    Pass(group_norm.GROUP_NORM_AS_MEANS, Stage.DECOMPOSE, "group_norm_as_means"),
    Pass(rms_norm.RMS_NORM_AS_MATMULS, Stage.DECOMPOSE, "rms_norm_as_matmuls"),
    Pass(mean.MEANS_AS_MATMULS_AND_SUMS, Stage.DECOMPOSE, "means_as_matmuls_and_sums"),
    Pass(unbind.UNBIND_AS_SLICES, Stage.DECOMPOSE, "unbind_as_slices"),
    Pass(conv3d.PATCHING_CONV3D_AS_LINEAR, Stage.DECOMPOSE, "patching_conv3d_as_linear"),
    Pass(expand_as_broadcast.EXPAND_AS_BROADCAST, Stage.DECOMPOSE, "expand_as_broadcast"),
    Pass(repeat_interleave.REPEAT_INTERLEAVE_AS_BROADCAST, Stage.DECOMPOSE, "repeat_interleave_as_broadcast"),
    Pass(gelu.gelu_spelled_out),
    Pass(pow.pow_as_products),
    Pass(upsample.upsample_as_concat),
    Pass(split.split_as_slices),
    Pass(float_scalars.int_scalars_as_floats),
    Pass(fold_constants.fold_constants),
    Pass(expand_as_view.expand_as_view, Stage.EDGE),
    Pass(select_as_slice.select_as_slice, Stage.EDGE),
    Pass(unsqueeze_as_view.unsqueeze_as_view, Stage.EDGE),
    Pass(squeeze_as_view.squeeze_as_view, Stage.EDGE),
    Pass(permute_on_fewer_axes.permute_on_fewer_axes, Stage.EDGE),  # after the views it collapses
)


def run_program_passes(program: torch.export.ExportedProgram,
                       passes: tuple[Pass, ...] = XNNPACK_PASSES) -> torch.export.ExportedProgram:
    """The DECOMPOSE passes of `passes` in one retrace, then every PROGRAM pass in order."""
    table = {op: fn for p in passes if p.stage is Stage.DECOMPOSE for op, fn in p.run.items()}
    if table:
        program = program.run_decompositions(table)
    for p in passes:
        if p.stage is Stage.PROGRAM:
            program = p.run(program)
    return program


def edge_passes(passes: tuple[Pass, ...] = XNNPACK_PASSES) -> list[Callable]:
    """The EDGE passes of `passes`, in order, as to_edge_transform_and_lower's transform_passes."""
    return [p.run for p in passes if p.stage is Stage.EDGE]
