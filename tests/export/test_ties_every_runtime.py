"""Exact ties on every runtime: the ToMe merge exported by each format's own exporter (ONNX:
INDEXED spelling, ExecuTorch: ARITHMETIC; Core AI: tests/export/test_coreai_format.py) picks the slots eager picks on inputs where
every score ties with many others, copies of different tokens included (their similarity is 1 up
to rounding that differs per backend; merge.snap_duplicates makes it exactly 1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tomobile.export.pipeline import stage_export
from tomobile.export.registry import ExportOptions
from tomobile.graphs.methods.merge import ARITHMETIC, assignment, merge_sum, one_hot_assignment
from tomobile.graphs.methods.ops import OPS_ATTR, merge_ops_of
from tomobile.graphs.methods.plan import Protected
from tomobile.graphs.models.exportable import Exportable, ModelBundle, TensorSpec
from tomobile.runtime.runners import load_runner

T, R = 41, 9


class Slots(Exportable):
    """metric (1, T, C) -> the one-hot matrix M (1, T - r, T), rebuilt by merging an identity."""

    input_specs = (TensorSpec("metric", (1, T, 8)),)
    output_names = ("m",)

    def __init__(self) -> None:
        super().__init__()
        setattr(self, OPS_ATTR, ARITHMETIC)  # each exporter traces its own spelling (pipeline: `using_ops`)

    def forward(self, metric: torch.Tensor) -> tuple[torch.Tensor]:
        eye = metric[0, :, :1] * 0.0 + torch.eye(T)  # (T, T)
        m = merge_ops_of(self).match(metric, R, Protected(class_token=True))
        return (merge_sum(m, eye.reshape(1, T, T)),)  # (1, T - r, T)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ties") / "slots"
    staging, _ = stage_export(ModelBundle("slots", {"model": Slots()}), ["onnx", "executorch"], out,
                              ExportOptions(), progress=False)
    return staging.path


@pytest.mark.slow  # two exports and 40 runtime calls: about 3 minutes on 2 loaded cores
@pytest.mark.parametrize("fmt,file", [("onnx", "model.onnx"), ("executorch", "model.pte")])
def test_every_runtime_picks_eager_slots_on_exact_ties(exported: Path, fmt: str, file: str):
    runner = load_runner(fmt, exported / file)
    gen = torch.Generator().manual_seed(5)
    for trial in range(20):
        protos = torch.randn(3, 8, generator=gen)
        metric = protos[torch.randint(0, 3, (1, T), generator=gen)]  # (1, T, 8): copies of 3 tokens
        want = one_hot_assignment(assignment(metric, R, Protected(class_token=True)), T - R, torch.float32)
        (got,) = runner.run([metric.numpy()])
        assert np.array_equal(got, want.numpy()), f"trial {trial}: {fmt} picked other slots than eager"
