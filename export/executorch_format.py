"""ExecuTorch exporter: torch.export program -> edge -> (XNNPACK delegate) -> model.pte.

For XNNPACK the program first goes through export/passes/ (layer norm, RMS norm, means, attention,
GELU, pow, unbind, repeat_interleave, growing expands and a patching 3-D convolution spelled in ops
XNNPACK delegates and computes as eager does; constants folded; edge-level expand, select, squeeze
and unsqueeze as views and slices, permutes of more than 6 axes on fewer).

Before the file is written, every operator left outside the delegate is checked against the
kernels registered in the installed runtime: a .pte that would fail at load_method is not written.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch
from torch.export.graph_signature import InputKind

from ..graphs.errors import InputError
from ..runtime.manifest import file_record
from .executorch_int8 import quantize_int8
from .opcheck import UnsupportedOpError, check_executorch_operators, check_graph, registered_executorch_kernels
from .passes import edge_passes, run_program_passes
from .registry import ExportOptions, PartInfo, register_exporter, register_group_exporter


def lower(program, backend: str, weights_tag: str | None = None):
    """ExportedProgram -> ExecutorchProgramManager for `backend` (xnnpack | portable).

    With `weights_tag`, every constant (delegated or not) goes to the data file `weights_tag.ptd`
    instead of the program: the runtime maps it (`load_program(pte, data_path=ptd)`)."""
    return lower_methods({"forward": program}, backend, weights_tag)


def lower_methods(programs: dict, backend: str, weights_tag: str | None = None):
    """{method name: ExportedProgram} -> one ExecutorchProgramManager with a method per entry.

    Weights the methods share are stored once: XNNPACK keeps delegated weights in the program's
    named data (keyed by their sha256), the emitter dedups the other constants by content, and
    with `weights_tag` the one `weights_tag.ptd` holds each tensor once (docs/shared_weights.md)."""
    from executorch.exir import ExecutorchBackendConfig, to_edge_transform_and_lower

    partitioners, passes = [], []
    if weights_tag is not None:
        programs = {name: _tag_weights(p, weights_tag) for name, p in programs.items()}
    if backend == "xnnpack":
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

        partitioners = [XnnpackPartitioner()]
        programs = {name: run_program_passes(p) for name, p in programs.items()}
        passes = edge_passes()
    shared = _alike_weights(programs) if weights_tag and len(programs) > 1 else None
    config = ExecutorchBackendConfig(external_constants=(
        (lambda node: weights_tag if shared is None or node.target in shared else None) if weights_tag else False))
    with _scalars_as(_float_dtype(next(iter(programs.values())))):
        edge = to_edge_transform_and_lower(programs, transform_passes=passes, partitioner=partitioners)
    return edge.to_executorch(config)


def _alike_weights(programs: dict) -> set[str]:
    """Placeholder names of the parameters and buffers that every method holding them holds alike
    (same name, equal tensor): the ones that may go to a shared .ptd.

    ExecuTorch keys a non-delegated constant in the .ptd by its fully qualified name, program-wide:
    two methods whose tensors share a name but not their values would read one of them (the
    TDTM variant's `rope_cos` (2, 16) against the plain one's (4, 16); constants propagated per
    graph, `c__prop_tensor_constant14`, (4, 1) against (8, 1)): `load_method` then fails with
    InvalidExternalData (0x24) where the sizes differ, and reads wrong values where only the
    values do. Such tensors stay in the .pte, per method (XNNPACK's delegated weights are keyed by
    their sha256 and need no such care)."""
    seen: dict[str, torch.Tensor] = {}
    names: dict[str, str] = {}  # placeholder name -> fqn
    differ: set[str] = set()
    for program in programs.values():
        tensors = {**program.state_dict, **program.constants}
        for spec in program.graph_signature.input_specs:
            if spec.kind not in (InputKind.PARAMETER, InputKind.BUFFER) or spec.target not in tensors:
                continue
            t = tensors[spec.target]
            names[spec.arg.name] = spec.target
            first = seen.setdefault(spec.target, t)
            if first is not t and (first.shape != t.shape or first.dtype != t.dtype or not torch.equal(first, t)):
                differ.add(spec.target)
    return {name for name, fqn in names.items() if fqn not in differ}


def _tag_weights(program, tag: str):
    """Re-export with every weight tagged for the data file `tag` (the tag is read by the XNNPACK
    serializer from unlifted get_attr nodes, so it is set on program.module() and exported again)."""
    from executorch.exir.passes.external_constants_pass import delegate_external_constants_pass_unlifted

    module = program.module()
    delegate_external_constants_pass_unlifted(module=module, gen_tag_fn=lambda node: tag)
    args, kwargs = program.example_inputs
    with torch.no_grad():
        return torch.export.export(module, args, kwargs, strict=False)


def _float_dtype(program):
    """The dtype of the program's first floating-point input (fp16 programs take fp16 inputs)."""
    for node in program.graph.nodes:
        val = node.meta.get("val") if node.op == "placeholder" else None
        if isinstance(val, torch.Tensor) and val.is_floating_point() and node.name in program.graph_signature.user_inputs:
            return val.dtype
    return torch.float32


@contextlib.contextmanager
def _scalars_as(dtype):
    """Lowering turns Python scalars in arithmetic (x * 0.5) into 0-d tensors of the default dtype,
    then casts them to the other operand's dtype. In an fp16 program each such cast of a constant
    stayed outside XNNPACK as a portable kernel call (63 in a 4-layer ViT); with fp16 as the default
    dtype while lowering, the scalars are fp16 from the start and no cast is left."""
    old = torch.get_default_dtype()
    if dtype == torch.float16:
        torch.set_default_dtype(torch.float16)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def program_summary(manager, method: str | None = None) -> dict:
    """Delegate partitions and the operators that run on portable kernels, from the execution plan
    of `method` (None: the first)."""
    plan = _plan(manager, method)
    ops = [(op.name, op.overload) for op in plan.operators]
    calls = [plan.operators[c.instr_args.op_index] for c in _kernel_calls(plan)]
    return {
        "partitions": sum(1 for _ in _delegate_calls(plan)),
        "operators": sorted({f"{n}.{o}" if o else n for n, o in ops}),
        "portable_kernel_calls": len(calls),
    }


def _plan(manager, method: str | None):
    plans = manager.executorch_program.execution_plan
    return plans[0] if method is None else next(p for p in plans if p.name == method)


def _kernel_calls(plan):
    for chain in plan.chains:
        for ins in chain.instructions:
            if type(ins.instr_args).__name__ == "KernelCall":
                yield ins


def _delegate_calls(plan):
    for chain in plan.chains:
        for ins in chain.instructions:
            if type(ins.instr_args).__name__ == "DelegateCall":
                yield ins


@register_exporter("executorch", precisions=("fp32", "fp16"), quantize=("int8",), backends=("xnnpack", "portable"),
                   float16_io=True)
def export_executorch(get_program, part: PartInfo, out: Path, options: ExportOptions) -> dict:
    return export_executorch_methods({part.stem: get_program}, {part.stem: part}, out, options, single=True)[part.stem]


@register_group_exporter("executorch")
def export_executorch_methods(get_programs: dict, parts: dict[str, PartInfo], out: Path, options: ExportOptions,
                              single: bool = False) -> dict[str, dict]:
    """Parts that share their weights -> one .pte with a method per part (named after it), the
    weights stored once. `single`: one part as the method `forward` (the plain export).
    Returns each part's manifest details ({"method": name} when shared)."""
    programs, precision = {}, options.precision
    backend = next((p.backend for p in parts.values() if p.backend), options.backend)  # a part's own, or --backend's
    for stem, part in parts.items():
        program = get_programs[stem](options.precision)
        if options.quantize == "int8":
            if options.precision != "fp32" or backend != "xnnpack":
                raise InputError("--quantize int8 for executorch takes the fp32 model and the xnnpack backend")
            program, precision = quantize_int8(program, part.calibration), "int8"
        problems = check_graph(program, "executorch")
        if problems:
            raise UnsupportedOpError(stem, "executorch", problems)
        programs["forward" if single else stem] = program
    external = any(p.external_weights for p in parts.values())
    manager = lower_methods(programs, backend, out.stem if external else None)
    kernels = registered_executorch_kernels()
    for stem, method in zip(parts, programs, strict=True):
        plan = _plan(manager, method)
        missing = check_executorch_operators([(op.name, op.overload) for op in plan.operators], kernels)
        if missing:
            raise UnsupportedOpError(stem, "executorch", missing)
    with out.open("wb") as f:
        manager.write_to_file(f)
    if external:
        manager.write_tensor_data_to_file(str(out.parent))  # OUT.stem + .ptd
    details = {}
    for stem, method in zip(parts, programs, strict=True):
        d = {"precision": precision, "backend": backend, **program_summary(manager, method)}
        if not single:
            d["method"] = method
        if precision == "int8":
            d["quantize"] = "static int8 linear/conv (PT2E, XNNPACK quantizer, calibrated on seeded inputs)"
        if external:
            d["weights"] = file_record(out.with_suffix(".ptd"))
        details[stem] = d
    forget_lowered_graphs()
    return details


def forget_lowered_graphs() -> None:
    """Empty ExecuTorch's `exir.backend.utils.is_same_node` cache. It is an unbounded lru_cache keyed
    by graph nodes, so it keeps every program lowered in this process alive, delegate blobs and
    all: exporting Wan 1.3B's blocks one by one grew by about 0.3 GB per block until it was cleared."""
    from executorch.exir.backend.utils import is_same_node  # deferred: executorch is heavy

    is_same_node.cache_clear()
