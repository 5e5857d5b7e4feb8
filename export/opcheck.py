"""Op check: walk an exported graph and name every op a target will not run, before writing it.

Two sources of truth: a table of ops measured to break a target (with the pinned toolchains,
sort/argsort have no ExecuTorch kernel; scatter_reduce(mean) exports to ONNX as a plain scatter and runs wrong, has no
ExecuTorch kernel and no Core ML converter; data-dependent shapes and .item() break static
export), and, for ExecuTorch, the kernels actually registered in the installed runtime.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..graphs.errors import TomobileError

ALL = ("onnx", "coreml", "executorch", "coreai")
_SORT = "no sort kernel in the ExecuTorch runtime: the .pte writes and then fails at load_method"
_SORT_COREAI = "coreai-torch has no lowering for sort/argsort (Core AI sorts only inside its own topk)"
_SCATTER = {
    "onnx": "ONNX has no mean reduction: the dynamo exporter writes a plain scatter that runs and is wrong",
    "executorch": "no scatter_reduce kernel in the ExecuTorch runtime (fails at load)",
    "coreml": "coremltools has no converter for scatter_reduce",
    "coreai": "coreai-torch has no lowering for scatter_reduce (only scatter with an add or multiply reduce)",
}
_DYNAMIC = "data-dependent output shape: mobile graphs need static shapes"
DENY: dict[str, dict[str, str]] = {
    "aten.sort": {"executorch": _SORT, "coreai": _SORT_COREAI},
    "aten.argsort": {"executorch": _SORT, "coreai": _SORT_COREAI},
    "aten.scatter_reduce": _SCATTER,
    "aten.index_put": {f: "in-place index write: not lowered the same way by every target" for f in ALL},
    "aten.index_put_": {f: "in-place index write: not lowered the same way by every target" for f in ALL},
    "aten.nonzero": {f: _DYNAMIC for f in ALL},
    "aten.masked_select": {f: _DYNAMIC for f in ALL},
    "aten._local_scalar_dense": {f: ".item(): a data-dependent Python scalar in the graph" for f in ALL},
}


@dataclass(frozen=True)
class OpProblem:
    node: str
    op: str
    reason: str

    def __str__(self) -> str:
        return f"{self.op} (node {self.node}): {self.reason}"


class UnsupportedOpError(TomobileError, RuntimeError):
    def __init__(self, part: str, fmt: str, problems: list[OpProblem]) -> None:
        shown = "; ".join(str(p) for p in problems[:3])
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        super().__init__(f"{fmt} will not run part '{part}': {shown}{more}")
        self.problems = problems


def _packet(target: object) -> str:
    """'aten.sort.default' -> 'aten.sort' (the op without its overload)."""
    name = str(target)
    return name.rsplit(".", 1)[0] if name.count(".") >= 2 else name


def check_graph(program: torch.export.ExportedProgram, fmt: str) -> list[OpProblem]:
    problems = []
    for node in program.graph.nodes:
        if node.op != "call_function":
            continue
        reason = DENY.get(_packet(node.target), {}).get(fmt)
        if reason:
            problems.append(OpProblem(node.name, str(node.target), reason))
    return problems


def registered_executorch_kernels() -> set[str]:
    """Operator names ('aten::add.out') with a kernel in the installed ExecuTorch runtime."""
    from executorch.extension.pybindings import portable_lib

    return set(portable_lib._get_operator_names())


def check_executorch_operators(operators: list[tuple[str, str]], kernels: set[str]) -> list[OpProblem]:
    """operators: (name, overload) pairs from a lowered program's execution plan."""
    problems = []
    for name, overload in operators:
        full = f"{name}.{overload}" if overload else name
        if full not in kernels and name not in kernels:
            problems.append(OpProblem("-", full, "no kernel registered in the ExecuTorch runtime"))
    return problems
