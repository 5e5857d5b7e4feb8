"""ONNX exporter: torch.export program -> dynamo ONNX exporter -> model.onnx (fp32, or with
--quantize int8 dynamically quantised weights). The merge is traced in its INDEXED spelling
(graphs/methods/merge_indexed.py, passed to the pipeline's get_program): the same assignment with ONNX Runtime's Gather, ArgMax and CumSum instead of
one-hot matmuls, which ORT runs faster.

Weights past protobuf's 2 GB limit go to `model.onnx_data` beside the graph: the name Hugging
Face hub-style loaders (optimum's ORTModel.from_pretrained) look for."""

from __future__ import annotations

import contextlib
import hashlib
import io
from pathlib import Path

import numpy as np
import torch
from torch.fx.traceback import preserve_node_meta

from ..graphs.methods.layers import MERGE_ANNOTATION
from ..graphs.methods.merge_indexed import INDEXED
from ..graphs.methods.ops import using_ops
from ..runtime.manifest import file_record, sha256_path
from .opcheck import UnsupportedOpError, check_graph
from .registry import ExportOptions, PartInfo, register_exporter, register_group_exporter


@register_exporter("onnx", ".onnx", precisions=("fp32",), quantize=("int8",))
def export_onnx(get_program, part: PartInfo, out: Path, options: ExportOptions) -> dict:
    program = get_program("fp32", INDEXED)
    problems = check_graph(program, "onnx")
    if problems:
        raise UnsupportedOpError(part.stem, "onnx", problems)
    with contextlib.redirect_stdout(io.StringIO()):  # the exporter prints its progress steps
        onnx_program = torch.onnx.export(
            program, input_names=list(part.input_names), output_names=list(part.output_names), dynamo=True,
            verbose=False,
        )
        if part.external_weights:  # weights in OUT.data, which ONNX Runtime can map instead of copying
            onnx_program.save(str(out), external_data=True)
            return {"precision": "fp32", "weights": file_record(out.with_name(f"{out.name}.data"))}
        if options.quantize != "int8":
            return {"precision": "fp32", **save_onnx(onnx_program.model, out)}
        fp32 = out.with_name(f"{out.stem}.fp32.tmp.onnx")
        onnx_program.save(str(fp32))
    try:
        quantize_int8(fp32, out)
    finally:
        fp32.unlink(missing_ok=True)
    return {"precision": "int8", "quantize": "dynamic int8 weights (onnxruntime quantize_dynamic)"}


def merge_node_names(wrapper) -> set[str]:
    """ONNX node names of the merge ops in `wrapper`'s export: the dynamo exporter names a node
    'node_' + its fx name, and the fx nodes the merge adds carry graphs/methods/layers.py MERGE_ANNOTATION
    when meta is preserved. Traced in the INDEXED spelling, as export_onnx traces it."""
    with torch.no_grad(), preserve_node_meta(), using_ops(wrapper, INDEXED.for_export()):
        program = torch.export.export(wrapper, wrapper.example_inputs(seed=0), strict=False)
    key, value = next(iter(MERGE_ANNOTATION.items()))
    return {f"node_{n.name}" for n in program.graph.nodes if (n.meta.get("custom") or {}).get(key) == value}


EXTERNAL_DATA_BYTES = 2 * 1024**3  # one protobuf file holds at most 2 GB


def save_onnx(model, out: Path, threshold: int = EXTERNAL_DATA_BYTES) -> dict:
    """Save an onnx_ir model as `out`; weights go to `<out>_data` (model.onnx_data) when they pass
    `threshold` bytes. Returns the manifest entry for the data file, or nothing."""
    import onnx_ir as ir

    weights = sum(v.const_value.nbytes for v in model.graph.initializers.values() if v.const_value is not None)
    if weights <= threshold:
        ir.save(model, str(out))
        return {}
    data = out.with_name(f"{out.name}_data")
    ir.save(model, str(out), external_data=data.name)
    return {"external_data": {"path": data.name, "sha256": sha256_path(data), "bytes": data.stat().st_size}}


def structural_matmuls(model) -> list[str]:
    """MatMul/Gemm nodes whose constant operand is structure, not a learned weight: one-hot
    selections, triangles and averaging columns of the merge (at most two distinct values).
    Quantising them would blur the exact 0/1 arithmetic that assigns tokens to slots."""
    from onnx import numpy_helper

    consts = {t.name: t for t in model.graph.initializer}
    names = []
    for node in model.graph.node:
        if node.op_type not in ("MatMul", "Gemm"):
            continue
        for inp in node.input:
            if inp in consts and np.unique(numpy_helper.to_array(consts[inp])).size <= 2:
                names.append(node.name)
                break
    return names


def quantize_int8(src: Path, dst: Path) -> None:
    """Dynamic int8 quantisation of an fp32 ONNX file with ONNX Runtime's quantize_dynamic: learned
    MatMul/Gemm weights become int8, activations are quantised per run. Activation-by-activation
    matmuls (attention) and the merge's structural matmuls stay fp32."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    exclude = structural_matmuls(onnx.load(str(src)))
    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, nodes_to_exclude=exclude,
                     extra_options={"MatMulConstBOnly": True})


SHARED_MIN_BYTES = 1024  # smaller initializers (shapes, scalars) stay in their graph
_ALIGN = 4096  # a page: ONNX Runtime maps external data, and two sessions then share the pages


@register_group_exporter("onnx")
def export_onnx_shared(get_programs: dict, parts: dict[str, PartInfo], out: Path,
                       options: ExportOptions) -> dict[str, dict]:
    """Parts that share their weights -> a graph per part (`<stem>.onnx`), all reading their
    weights from one external data file `<out>.data` (each distinct tensor once, page-aligned).
    Returns each part's details with its own graph's "path" and the shared "weights" record."""
    paths = {stem: out.with_name(f"{stem}.onnx") for stem in parts}
    details = {stem: export_onnx(get_programs[stem], part, paths[stem], options) for stem, part in parts.items()}
    data = out.with_name(f"{out.name}.data")
    share_initializers(list(paths.values()), data)
    record = file_record(data)
    return {stem: {**{k: v for k, v in d.items() if k not in ("weights", "external_data")},
                   "path": paths[stem].name, "weights": record} for stem, d in details.items()}


def share_initializers(paths: list[Path], data: Path, min_bytes: int = SHARED_MIN_BYTES) -> None:
    """Move every initializer of `min_bytes` or more from the ONNX files `paths` into the one
    external data file `data` (beside them), a tensor whose bytes another already wrote pointing
    at the same offset. The per-graph data files the exporter wrote are removed."""
    import onnx
    from onnx import numpy_helper
    from onnx.external_data_helper import set_external_data

    written: dict[bytes, tuple[int, int]] = {}
    tmp, old = data.with_name(f".{data.name}.tmp"), set()  # a part's own data file may be named `data`
    with tmp.open("wb") as f:
        for path in paths:
            # Its own data file (a split part's): loading the data clears the tensors' locations.
            graph = onnx.load(str(path), load_external_data=False)
            old |= {path.parent / e.value for t in graph.graph.initializer for e in t.external_data
                    if e.key == "location"}
            model = onnx.load(str(path))  # with its own external data, if any
            for t in model.graph.initializer:
                if not t.HasField("raw_data"):
                    t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t), t.name))
                raw = t.raw_data
                if len(raw) < min_bytes:
                    continue
                key = hashlib.sha256(raw).digest()
                if key not in written:
                    f.seek(-f.tell() % _ALIGN, 1)
                    written[key] = (f.tell(), len(raw))
                    f.write(raw)
                offset, length = written[key]
                set_external_data(t, location=data.name, offset=offset, length=length)
                t.ClearField("raw_data")
                t.data_location = onnx.TensorProto.EXTERNAL
            onnx.save(model, str(path))
        f.truncate()
    for file in old:
        file.unlink(missing_ok=True)
    tmp.replace(data)
