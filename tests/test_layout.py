"""The package layout holds (the README's Layout section): imports point one way (cli -> export,
runtime -> graphs; graphs imports none of the others; runtime never imports export or cli; nothing
imports cli); inside graphs, models -> methods -> the SPEC grammar (the methods know no model, the
grammar no method; the SPEC parser reads the method table); inside runtime, the rest -> the
runners -> the manifest reader -> the folder's schema; no module imports another in a cycle,
no private names cross modules, imports between the packages are relative, and a function-level
import is a deferred heavy one.

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
# graphs' subpackages -> the others they may import (each may import its own modules and graphs'
# top-level ones: errors, numbers); the most specific name that a module starts with applies.
GRAPHS_ALLOWED = {"graphs.spec.grammar": set(), "graphs.spec": {"graphs.methods"}, "graphs.methods": {"graphs.spec.grammar"},
                  "graphs.models": {"graphs.methods", "graphs.spec"}}
# runtime's floors -> the runtime modules each may import besides its own: the export folder's schema
# (names, formats, writer), its reader (manifest.json decoded into types), the runners (one module per
# runtime); validation, streaming, generation and benchmarks stand on them. Other runtime modules are free.
RUNTIME_FLOORS = {"runtime.manifest": set(), "runtime.manifest_reader": {"runtime.manifest"},
                  "runtime.runners": {"runtime.manifest", "runtime.manifest_reader"}}
# Third-party modules that may be imported inside a function: heavy, and needed only on some paths.
DEFERRED = {"transformers", "coremltools", "coreai", "coreai_torch", "executorch", "torchao", "onnx", "onnx_ir", "onnxruntime",
            "matplotlib", "PIL", "diffusers", "imageio_ffmpeg"}


def _modules(root: Path = ROOT) -> dict[str, Path]:
    """'graphs.methods.merge' -> graphs/methods/merge.py for every module of the four packages and
    their subpackages ('graphs.methods' -> graphs/methods/__init__.py)."""
    out = {}
    for pkg in PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            out[".".join(parts[:-1] if path.stem == "__init__" else parts)] = path
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


def _within(name: str, unit: str) -> bool:
    return name == unit or name.startswith(unit + ".")


def _graphs_unit(name: str) -> str | None:
    """The GRAPHS_ALLOWED key that rules module `name` (the longest that contains it), or None."""
    return max((u for u in GRAPHS_ALLOWED if _within(name, u)), key=len, default=None)


def _runtime_floor(name: str) -> str | None:
    """The RUNTIME_FLOORS key that rules module `name`, or None."""
    return max((u for u in RUNTIME_FLOORS if _within(name, u)), key=len, default=None)


def _wrong_arrow(name: str, target: str) -> bool:
    if target.split(".")[0] != name.split(".")[0]:
        return target.split(".")[0] not in ALLOWED[name.split(".")[0]]
    if (floor := _runtime_floor(name)) is not None:
        return not (_within(target, floor) or any(_within(target, a) for a in RUNTIME_FLOORS[floor]))
    unit = _graphs_unit(name)
    if unit is None or _graphs_unit(target) is None or _within(target, ".".join(name.split(".")[:2])):
        return False  # outside graphs' subpackages, into graphs' top modules, or within its own subpackage
    return not any(_within(target, a) for a in GRAPHS_ALLOWED[unit])


def _wrong_arrows(graph: dict[str, set[str]]) -> list[str]:
    return [f"{name} imports {target}" for name, targets in graph.items() for target in sorted(targets)
            if _wrong_arrow(name, target)]


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


def test_the_rule_reads_subpackages_and_their_arrows(tmp_path):
    """Modules in nested folders are found and named, and graphs' inner arrows are checked: a method
    that imports a model, and the SPEC grammar that imports the method table, are wrong; a model
    that imports a method, and the SPEC parser that reads the method table, are allowed."""
    files = {"graphs/__init__.py": "from .spec.config import C\n", "graphs/errors.py": "",
             "graphs/spec/__init__.py": "", "graphs/spec/grammar.py": "from ..errors import E\nfrom ..methods.registry import T\n",
             "graphs/spec/config.py": "from .grammar import G\nfrom ..methods.registry import T\n",
             "graphs/methods/__init__.py": "", "graphs/methods/registry.py": "from . import tome\n",
             "graphs/methods/tome.py": "from ..spec.grammar import G\nfrom ..models.zoo import Z\n",
             "graphs/models/zoo.py": "from ..methods.tome import M\nfrom ..spec.config import C\n"}
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    found = _modules(tmp_path)
    assert set(found) == {"graphs", "graphs.errors", "graphs.spec", "graphs.spec.grammar", "graphs.spec.config",
                          "graphs.methods", "graphs.methods.registry", "graphs.methods.tome", "graphs.models.zoo"}
    graph = _edges(found)
    assert graph["graphs.methods.registry"] == {"graphs.methods.tome"}
    assert _wrong_arrows(graph) == ["graphs.methods.tome imports graphs.models.zoo",
                                    "graphs.spec.grammar imports graphs.methods.registry"]


def test_the_rule_keeps_runtime_floors_under_the_rest(tmp_path):
    """The schema imports no other runtime module, its reader only the schema, the runners only
    those two and each other: a runner that imports validation, or the schema that imports its
    reader, is wrong; validation importing the runners is allowed."""
    files = {"runtime/manifest.py": "from .manifest_reader import M\n",
             "runtime/manifest_reader.py": "from .manifest import FORMATS\n",
             "runtime/runners/__init__.py": "from .ort import R\nfrom ..manifest_reader import M\n",
             "runtime/runners/ort.py": "from ..manifest import FORMATS\nfrom ..validate import V\n",
             "runtime/validate.py": "from .runners import R\nfrom .manifest_reader import M\n"}
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    assert _wrong_arrows(_edges(_modules(tmp_path))) == ["runtime.manifest imports runtime.manifest_reader",
                                                        "runtime.runners.ort imports runtime.validate"]


def test_importing_the_library_packages_does_not_import_the_cli():
    """Every module of graphs, export and runtime (subpackages included) imported in one fresh process
    (a few seconds), each reachable as an attribute (`import tomobile.graphs.methods.merge as m` fails
    where a package's __init__ binds another object to a submodule's name)."""
    code = ("import sys, importlib, pkgutil\n"
            "for package in ('graphs', 'runtime', 'export'):\n"
            "    p = importlib.import_module('tomobile.' + package)\n"
            "    for m in pkgutil.walk_packages(p.__path__, p.__name__ + '.'):\n"
            "        module, found = importlib.import_module(m.name), sys.modules['tomobile']\n"
            "        for part in m.name.split('.')[1:]:\n"
            "            found = getattr(found, part)\n"
            "        assert found is module, f'{m.name} is shadowed by a name in its package: {found!r}'\n"
            "    print(package, sorted(m for m in sys.modules if m.startswith('tomobile.cli')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[:3] == ["graphs []", "runtime []", "export []"]
