"""The INDEXED merge as ONNX Runtime runs it: on inputs full of exact ties its TopK must order
equal scores by the lower index, so the exported graph picks the slots eager's arithmetic graph picks."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch

from tomobile.graphs.methods.merge import assignment, one_hot_assignment
from tomobile.graphs.methods.merge_indexed import INDEXED
from tomobile.graphs.methods.plan import Protected


class _Slots(torch.nn.Module):
    """metric (1, T, C) -> the one-hot matrix M (1, T', T) rebuilt by the INDEXED sum of an identity."""

    def __init__(self, r: int, protected: Protected) -> None:
        super().__init__()
        self.r, self.protected = r, protected

    def forward(self, metric: torch.Tensor) -> torch.Tensor:
        t = metric.shape[1]
        eye = metric[0, :, :1] * 0.0 + torch.eye(t)  # (T, T0)
        return INDEXED.for_export().match(metric, self.r, self.protected).sum(eye.reshape(1, t, t))


@pytest.mark.parametrize("class_token,distill_token", [(True, False), (True, True)])
def test_exported_indexed_merge_picks_eager_slots_on_ties(tmp_path, class_token, distill_token):
    import onnx
    import onnxruntime as ort

    t, r = 41, 9
    protected = Protected(class_token, distill_token)
    with torch.no_grad():  # ONNX's spelling, as the ONNX exporter traces it
        program = torch.export.export(_Slots(r, protected), (torch.randn(1, t, 8),), strict=False)
    with contextlib.redirect_stdout(io.StringIO()):
        torch.onnx.export(program, dynamo=True).save(str(tmp_path / "slots.onnx"))
    session = ort.InferenceSession(str(tmp_path / "slots.onnx"), providers=["CPUExecutionProvider"])
    ops = {n.op_type for n in onnx.load(str(tmp_path / "slots.onnx")).graph.node}
    assert "TopK" in ops and "Gather" in ops
    gen = torch.Generator().manual_seed(5)
    for trial in range(20):
        protos = torch.randn(3, 8, generator=gen)
        metric = protos[torch.randint(0, 3, (1, t), generator=gen)]  # every score ties with many others
        want = one_hot_assignment(assignment(metric, r, protected), t - r, torch.float32)
        (got,) = session.run(None, {session.get_inputs()[0].name: metric.numpy()})
        assert np.array_equal(got, want.numpy()), f"trial {trial}: ORT picked other slots than eager"
