"""Weight-only int8 (export/onnx_weights_int8.py): large 2-D weights become int8 with a scale per
output channel behind DequantizeLinear; the graph computes in fp32 and gives nearly the same outputs."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from tomobile.export.onnx_weights_int8 import quantize_weights_int8


def _embedding_mlp(path, vocab: int = 300, dim: int = 64) -> None:
    """ids (1, 8) int64 -> Gather(table) @ W + b (1, 8, dim): one table, one weight, one small bias."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(size=(vocab, dim)).astype(np.float32), "table"),
             numpy_helper.from_array(rng.normal(size=(dim, dim)).astype(np.float32) * 0.1, "weight"),
             numpy_helper.from_array(rng.normal(size=(dim,)).astype(np.float32), "bias")]
    nodes = [helper.make_node("Gather", ["table", "ids"], ["emb"]), helper.make_node("MatMul", ["emb", "weight"], ["mm"]),
             helper.make_node("Add", ["mm", "bias"], ["out"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 8])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 8, dim])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_weights_become_int8_and_outputs_stay_close(tmp_path):
    src, dst = tmp_path / "m.onnx", tmp_path / "m.int8.onnx"
    _embedding_mlp(src)
    assert quantize_weights_int8(src, dst) == 2  # the table and the weight; the bias is too small
    model = onnx.load(str(dst))
    kinds = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    assert kinds["table_int8"].dtype == np.int8 and kinds["table_scale"].shape == (300,)  # per row
    assert kinds["weight_int8"].dtype == np.int8 and kinds["weight_scale"].shape == (64,)  # per output column
    assert kinds["bias"].dtype == np.float32 and "table" not in kinds and "weight" not in kinds
    assert [n.op_type for n in model.graph.node[:2]] == ["DequantizeLinear", "DequantizeLinear"]
    assert dst.stat().st_size < 0.3 * src.stat().st_size
    ids = {"ids": np.array([[0, 5, 17, 299, 42, 42, 7, 100]], np.int64)}
    ref = ort.InferenceSession(str(src)).run(None, ids)[0][0]
    out = ort.InferenceSession(str(dst)).run(None, ids)[0][0]
    cos = (ref * out).sum(-1) / (np.linalg.norm(ref, axis=-1) * np.linalg.norm(out, axis=-1))
    assert cos.min() > 0.999 and not np.array_equal(ref, out)
