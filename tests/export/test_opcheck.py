"""The op check names ops a target will not run, before anything is written."""

from __future__ import annotations

import pytest
import torch

from tomobile.export.opcheck import UnsupportedOpError, check_executorch_operators, check_graph
from tomobile.export.pipeline import stage_export
from tomobile.export.registry import ExportOptions
from tomobile.graphs.models.exportable import Exportable, ModelBundle, TensorSpec


class ReferenceStyleMerge(Exportable):
    """The original ToMe style: argsort + scatter_reduce(mean)."""

    input_specs = (TensorSpec("x", (1, 16, 4)),)
    output_names = ("y",)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        a, b = x[:, ::2], x[:, 1::2]
        order = a.norm(dim=-1).argsort(dim=-1, descending=True)[..., None]
        dst = b.scatter_reduce(1, order[:, :4].expand(1, 4, 4), a[:, :4], reduce="mean")
        return (dst,)


def _program():
    m = ReferenceStyleMerge()
    return torch.export.export(m, m.example_inputs(), strict=False)


def test_check_graph_names_sort_and_scatter_reduce():
    problems = check_graph(_program(), "executorch")
    ops = {p.op for p in problems}
    assert any("sort" in o for o in ops) and any("scatter_reduce" in o for o in ops)
    onnx = check_graph(_program(), "onnx")
    assert [p.op for p in onnx] == ["aten.scatter_reduce.two"]  # ONNX Runtime runs argsort fine
    assert "wrong" in onnx[0].reason


def test_export_of_reference_merge_stops_and_leaves_nothing(tmp_path):
    bundle = ModelBundle("reference", {"model": ReferenceStyleMerge()})
    out = tmp_path / "out"
    with pytest.raises(UnsupportedOpError, match="executorch will not run part 'model'"):
        stage_export(bundle, ["executorch"], out, ExportOptions(), progress=False)
    assert list(tmp_path.iterdir()) == []


def test_executorch_kernel_check_flags_missing_kernels():
    kernels = {"aten::add.out", "aten::mm.out"}
    problems = check_executorch_operators([("aten::add", "out"), ("aten::sort", "values")], kernels)
    assert [p.op for p in problems] == ["aten::sort.values"]
