"""Weight-only int8 for an fp32 ONNX file: every large 2-D float32 weight is stored as int8 with one
float32 scale per output channel (symmetric, zero point 0), and a DequantizeLinear node at the top of
the graph turns it back into float32 when the model runs. The compute stays fp32; only the file is
about 4x smaller. This is what the browser app wants from video-dit-tiny's text encoder (91 MB fp32,
downloaded on a phone's first visit): dynamic int8 (quantize_dynamic, `--quantize int8`) also
quantises activations and moved MiniLM's token states to a lowest cosine of 0.95-0.99 against fp32;
weights alone keep it above 0.998 (docs/web_phone.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

MIN_ELEMENTS = 4096  # smaller tensors (biases, layer norms, positions) stay float32


def quantize_weights_int8(src: Path, dst: Path, min_elements: int = MIN_ELEMENTS) -> int:
    """Write `src` with int8 weights to `dst`; returns how many initializers became int8."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    gathered = {n.input[0] for n in graph.node if n.op_type == "Gather"}  # embedding tables
    kept, dequantize = [], []
    for tensor in graph.initializer:
        w = numpy_helper.to_array(tensor)
        if w.dtype != np.float32 or w.ndim != 2 or w.size < min_elements:
            kept.append(tensor)
            continue
        # One scale per row of an embedding table (V, D), per output column of a MatMul weight (in, out).
        axis = 0 if tensor.name in gathered else 1
        scale = np.abs(w).max(axis=1 - axis) / 127.0  # (V,) or (out,)
        scale[scale == 0] = 1.0
        q = np.clip(np.round(w / np.expand_dims(scale, 1 - axis)), -127, 127).astype(np.int8)  # as w
        kept += [numpy_helper.from_array(q, f"{tensor.name}_int8"), numpy_helper.from_array(scale.astype(np.float32), f"{tensor.name}_scale")]
        dequantize.append(helper.make_node("DequantizeLinear", [f"{tensor.name}_int8", f"{tensor.name}_scale"], [tensor.name],
                                           axis=axis, name=f"{tensor.name}_dequantize"))
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(dequantize + nodes)  # the weights' names now come from nodes, before their users
    onnx.save(model, str(dst))
    return len(dequantize)


def int8_weights_companion(src: Path, dst: Path) -> str:
    """The companion of the fp32 ONNX file `src` (an ONNX exporter hook, export/registry.py):
    `dst` with int8 weights; returns the manifest's description of what was quantised."""
    count = quantize_weights_int8(src, dst)
    return f"int8 weights, per channel ({count} tensors), dequantized when loaded; fp32 compute"
