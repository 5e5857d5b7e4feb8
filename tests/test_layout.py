"""The package layout holds (STYLE.md, README's Layout): imports point one way (cli -> export,
runtime -> graphs; graphs imports none of the others; runtime never imports export or cli; nothing
imports cli), no module imports another in a cycle, no private names cross modules, imports
between the packages are relative, and a function-level import is a deferred heavy one.

Read from the AST of every module, function-level imports included: a deferred import is an
arrow all the same."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("graphs", "export", "runtime", "cli")
# package -> the packages it may import
ALLOWED = {"graphs": set(), "runtime": {"graphs"}, "export": {"graphs", "runtime"}, "cli": {"graphs", "runtime", "export"}}
# Third-party modules that may be imported inside a function: heavy, and needed only on some paths.
DEFERRED = {"transformers", "coremltools", "coreai", "coreai_torch", "executorch", "torchao", "onnx", "onnx_ir", "onnxruntime",
            "matplotlib", "PIL", "diffusers"}


def _modules() -> dict[str, Path]:
    """'graphs.merge' -> graphs/merge.py for every module of the four packages."""
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).glob("*.py")):
            out[pkg if path.stem == "__init__" else f"{pkg}.{path.stem}"] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> list[tuple[ast.stmt, str | None, list[str], bool]]:
    """(node, imported module as 'pkg.mod' or an absolute name, names, at module level) per import."""
    tree = ast.parse(path.read_text())
    top = {id(n) for n in tree.body}
    # `if TYPE_CHECKING:` imports are for annotations only: no arrow at run time.
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
                   for n in ast.walk(node)}
    package = name if path.stem == "__init__" else name.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                out.append((node, alias.name, [], id(node) in top))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            names = [a.name for a in node.names]
            if node.level and not node.module:  # from . import cmd_x: each name is a module
                out.extend((node, f"{target}.{n}" if target else n, [], id(node) in top) for n in names)
            else:
                out.append((node, target, names, id(node) in top))
    return out


def _edges(modules: dict[str, Path]) -> dict[str, set[str]]:
    graph = {m: set() for m in modules}
    for name, path in modules.items():
        for _, target, _, _ in _imports(name, path):
            if target in modules and target != name:
                graph[name].add(target)
    return graph


def _wrong_arrows(graph: dict[str, set[str]]) -> list[str]:
    return [f"{name} imports {target}" for name, targets in graph.items() for target in sorted(targets)
            if target.split(".")[0] != name.split(".")[0] and target.split(".")[0] not in ALLOWED[name.split(".")[0]]]


def _cycles(graph: dict[str, set[str]]) -> list[str]:
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return cycles


def test_the_packages_import_only_what_the_layout_allows():
    wrong = _wrong_arrows(_edges(MODULES))
    assert not wrong, wrong


def test_no_import_cycle():
    cycles = _cycles(_edges(MODULES))
    assert not cycles, cycles


def test_imports_between_packages_are_relative_and_name_no_private_helper():
    problems = []
    for name, path in MODULES.items():
        for node, target, names, _ in _imports(name, path):
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            if target and (target == "tomobile" or target.startswith("tomobile.")):
                problems.append(f"{where}: absolute import of {target}; use a relative one")
            if target in MODULES and target != name:
                problems += [f"{where}: imports the private {n} from {target}" for n in names
                             if n.startswith("_") and not n.startswith("__")]
    assert not problems, problems


def test_function_level_imports_are_deferred_heavy_ones():
    local = [f"{path.relative_to(ROOT)}:{node.lineno}: {target}" for name, path in MODULES.items()
             for node, target, _, at_top in _imports(name, path)
             if not at_top and (target or "").split(".")[0] not in DEFERRED]
    assert not local, local


def test_the_rule_catches_a_cycle_and_a_wrong_arrow(tmp_path):
    """The checks above are not vacuous: a module pair importing each other (one of the imports
    inside a function), and runtime -> export."""
    for pkg in ("runtime", "export"):
        (tmp_path / pkg).mkdir()
    fake = {"runtime.a": tmp_path / "runtime" / "a.py", "runtime.b": tmp_path / "runtime" / "b.py",
            "export.c": tmp_path / "export" / "c.py"}
    fake["runtime.a"].write_text("from .b import x\nfrom ..export.c import y\n")
    fake["runtime.b"].write_text("def f():\n    from .a import z\n")
    fake["export.c"].write_text("y = 1\n")
    graph = _edges(fake)
    assert _cycles(graph) == ["runtime.a -> runtime.b -> runtime.a"]
    assert _wrong_arrows(graph) == ["runtime.a imports export.c"]


def test_importing_the_library_packages_does_not_import_the_cli():
    """Every module of graphs, export and runtime imported in one fresh process (a few seconds)."""
    code = ("import sys, importlib, pkgutil\n"
            "for package in ('graphs', 'runtime', 'export'):\n"
            "    p = importlib.import_module('tomobile.' + package)\n"
            "    for m in pkgutil.iter_modules(p.__path__):\n"
            "        importlib.import_module(f'tomobile.{package}.{m.name}')\n"
            "    print(package, sorted(m for m in sys.modules if m.startswith('tomobile.cli')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[:3] == ["graphs []", "runtime []", "export []"]
