"""Which spelling of tomesd's spatial merge converts to Core ML and Core AI (and runs, on Core AI).

A 16 x 16 token grid (C = 32) is merged at ratio 0.5, passed through a Linear, and copied back.
The module is traced with the export spelling (TopK where eager sorts), once with the INDEXED form
(TopK, scatter, scatter-add, gather) and once with the ONE_HOT form. Each trace goes through
coremltools (mlprogram, iOS17, conversion only: predictions need macOS) and coreai-torch, and the
Core AI asset is run against eager. The script prints one line per form and target: the converter's
own error, or what it converted.

    python scripts/spatial_convert_probe.py"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from tomobile.export.coreai_format import MINIMUM_OS, import_coreai_torch
from tomobile.graphs.methods.merge import ARITHMETIC
from tomobile.graphs.methods.spatial_merge import (
    SpatialMergeConfig,
    SpatialOps,
    destination_indices,
    merge_count,
    merge_fns,
)

H = W = 16
C = 32
CFG = SpatialMergeConfig(ratio=0.5)
INDEX_OPS = ("topk", "scatter", "gather", "sort", "argmax", "cumsum")


class MergeLinearUnmerge(torch.nn.Module):
    def __init__(self, spatial: SpatialOps) -> None:
        super().__init__()
        self.spatial = spatial
        self.lin = torch.nn.Linear(C, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        merge, unmerge = merge_fns(x, destination_indices(H, W, CFG), merge_count(H, W, CFG), self.spatial,
                                   ARITHMETIC.for_export())
        return unmerge(self.lin(merge(x)))


def coreml(program) -> str:
    import coremltools as ct

    try:
        model = ct.convert(program.run_decompositions(), convert_to="mlprogram",
                           minimum_deployment_target=ct.target.iOS17, skip_model_load=True)
    except Exception as err:  # the converter's own word
        return f"not converted: {type(err).__name__}: {str(err).splitlines()[0]}"
    kinds = {op.type for f in model._spec.mlProgram.functions.values()
             for b in f.block_specializations.values() for op in b.operations}
    return f"converted (index ops: {sorted(k for k in kinds if any(s in k for s in INDEX_OPS))})"


def coreai(program, x: torch.Tensor, want: np.ndarray) -> str:
    from coreai.authoring.asset import OSVersion

    from tomobile.runtime.runners.coreai import CoreAIRunner

    ca = import_coreai_torch()
    try:
        conv = ca.TorchConverter(mode=ca.TorchConverter.Mode.RELEASE)
        conv.add_exported_program(program.run_decompositions(ca.get_decomp_table()), input_names=["x"],
                                  output_names=["y"], entrypoint_name="main")
        asset = conv.to_coreai()
    except Exception as err:  # the converter's own word
        return f"not converted: {type(err).__name__}: {str(err).splitlines()[0]}"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "probe.aimodel"
        asset.save_asset(out, minimum_os=OSVersion(MINIMUM_OS))
        runner = CoreAIRunner(out)
        try:
            got = runner.run([x.numpy()])[0]
        finally:
            runner.close()
    return f"converted and ran, max abs difference from eager {float(np.abs(got - want).max()):.1e}"


def main() -> None:
    torch.manual_seed(0)
    x = torch.randn(1, H * W, C)
    for spatial in (SpatialOps.INDEXED, SpatialOps.ONE_HOT):
        module = MergeLinearUnmerge(spatial).eval()
        with torch.no_grad():
            want = module(x).numpy()
        program = torch.export.export(module, (x,))
        print(f"{spatial.value}: Core ML {coreml(program)}")
        print(f"{spatial.value}: Core AI {coreai(program, x, want)}")


if __name__ == "__main__":
    main()
