"""ios_demo/: no Swift toolchain installs here (none on Debian, PyPI or npm), so the Swift package is
checked as far as this machine allows: every .swift file parses with a real Swift grammar
(tree-sitter-swift), TomobileCore declares the Kotlin core's functions with the same names in the same
order, and the XCTest target has the JUnit tests' counterparts. Nothing here compiles or runs Swift;
ios_demo/README.md gives the `swift build` / `swift test` commands for a machine with a toolchain."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IOS = ROOT / "ios_demo"
KOTLIN_CORE = ROOT / "android_demo/core/src/main/kotlin/org/tomobile/core"
KOTLIN_TESTS = ROOT / "android_demo/core/src/test/kotlin/org/tomobile/core"
SWIFT_FILES = sorted(p.relative_to(IOS).as_posix() for p in IOS.rglob("*.swift") if ".build" not in p.parts)
# Kotlin core file -> its Swift twin (SHA256.swift has none: Kotlin uses java.security.MessageDigest).
MIRRORED = ("Noise", "Json", "Tokenizer", "Sampler", "Manifest", "Pipeline", "Flow")
TESTED = ("Noise", "Tokenizer", "Sampler", "Manifest", "Pipeline", "Contract", "WanContract")


def parser():
    import tree_sitter_swift
    from tree_sitter import Language, Parser

    return Parser(Language(tree_sitter_swift.language()))


def syntax_errors(source: bytes) -> list[str]:
    """Line:column and kind of every ERROR or MISSING node tree-sitter-swift finds."""
    found: list[str] = []

    def walk(node) -> None:
        if node.type == "ERROR" or node.is_missing:
            row, col = node.start_point
            found.append(f"{row + 1}:{col + 1} {'missing ' + node.type if node.is_missing else 'unexpected input'}")
        for child in node.children:
            walk(child)

    tree = parser().parse(source)
    walk(tree.root_node)
    if tree.root_node.has_error and not found:
        found.append("parse error")
    return found


def swift_functions(path: Path) -> list[str]:
    """Names of every func (also nested and protocol requirements) in source order."""
    names: list[str] = []

    def walk(node) -> None:
        if node.type in ("function_declaration", "protocol_function_declaration"):
            names.append(node.child_by_field_name("name").text.decode())
        for child in node.children:
            walk(child)

    walk(parser().parse(path.read_bytes()).root_node)
    return names


def kotlin_functions(path: Path) -> list[str]:
    """Names of every fun in source order (the identifier right before the parameter list)."""
    return re.findall(r"\bfun\b[^(={\n]*?([A-Za-z_]\w*)\s*\(", path.read_text())


def test_the_package_has_its_parts():
    expected = {"Package.swift", "Sources/TomobileCLI/main.swift", "Sources/TomobileCoreML/ManagedMLModel.swift",
                "Sources/TomobileCoreML/CoreMLParts.swift", "Sources/TomobileCoreAI/CoreAIParts.swift", "App/TomobileDemo/ContentView.swift",
                *(f"Sources/TomobileCore/{name}.swift" for name in MIRRORED),
                *(f"Tests/TomobileCoreTests/{name}Tests.swift" for name in TESTED)}
    assert expected <= set(SWIFT_FILES)


def test_the_checker_flags_broken_swift():
    assert syntax_errors(b"func f(_ x: Int) -> Int { return x &+ 1 }\n") == []
    assert syntax_errors(b"func f(_ x: Int -> Int { return x }\n")
    assert syntax_errors(b"struct S { var x: Int = }\n")


@pytest.mark.parametrize("path", SWIFT_FILES)
def test_swift_file_parses(path):
    assert syntax_errors((IOS / path).read_bytes()) == [], f"ios_demo/{path}"


@pytest.mark.parametrize("name", MIRRORED)
def test_core_mirrors_kotlin_function_by_function(name):
    kotlin = kotlin_functions(KOTLIN_CORE / f"{name}.kt")
    swift = swift_functions(IOS / f"Sources/TomobileCore/{name}.swift")
    assert kotlin, name
    assert swift == kotlin, f"{name}: Kotlin {kotlin}\n Swift {swift}"


@pytest.mark.parametrize("name", TESTED)
def test_xctests_mirror_the_junit_tests(name):
    junit = re.findall(r"@Test\s+fun\s+(\w+)\(", (KOTLIN_TESTS / f"{name}Test.kt").read_text())
    xctest = [n for n in swift_functions(IOS / f"Tests/TomobileCoreTests/{name}Tests.swift") if n.startswith("test")]
    assert junit, name
    assert xctest == ["test" + n[0].upper() + n[1:] for n in junit]
