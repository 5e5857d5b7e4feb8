"""ExecuTorch exporter: torch.export program -> edge -> (XNNPACK delegate) -> model.pte.

Before the file is written, every operator left outside the delegate is checked against the
kernels registered in the installed runtime: a .pte that would fail at load_method is not written.
"""

from __future__ import annotations

from pathlib import Path

from .opcheck import UnsupportedOpError, check_executorch_operators, check_graph, registered_executorch_kernels
from .registry import ExportOptions, PartInfo, register_exporter


def lower(program, backend: str):
    """ExportedProgram -> ExecutorchProgramManager for `backend` (xnnpack | portable)."""
    from executorch.exir import to_edge_transform_and_lower

    partitioners = []
    if backend == "xnnpack":
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

        partitioners = [XnnpackPartitioner()]
    return to_edge_transform_and_lower(program, partitioner=partitioners).to_executorch()


def program_summary(manager) -> dict:
    """Delegate partitions and the operators that run on portable kernels, from the execution plan."""
    plan = manager.executorch_program.execution_plan[0]
    ops = [(op.name, op.overload) for op in plan.operators]
    calls = [plan.operators[c.instr_args.op_index] for c in _kernel_calls(plan)]
    return {
        "partitions": sum(1 for _ in _delegate_calls(plan)),
        "operators": sorted({f"{n}.{o}" if o else n for n, o in ops}),
        "portable_kernel_calls": len(calls),
    }


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


@register_exporter("executorch", ".pte", precisions=("fp32", "fp16"))
def export_executorch(get_program, part: PartInfo, out: Path, options: ExportOptions) -> dict:
    program = get_program(options.precision)
    problems = check_graph(program, "executorch")
    if problems:
        raise UnsupportedOpError(part.stem, "executorch", problems)
    manager = lower(program, options.backend)
    plan = manager.executorch_program.execution_plan[0]
    missing = check_executorch_operators([(op.name, op.overload) for op in plan.operators],
                                         registered_executorch_kernels())
    if missing:
        raise UnsupportedOpError(part.stem, "executorch", missing)
    out.write_bytes(manager.buffer)
    return {"precision": options.precision, "backend": options.backend, **program_summary(manager)}
