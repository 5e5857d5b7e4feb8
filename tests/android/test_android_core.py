"""android_demo/: :core's JUnit 5 tests (Kotlin, over the exports' contract.json and wan_contract.json and fixtures the Python
reference writes at test time) and the ExecuTorch glue compiled against compile-only signature stubs.
android_demo/tools/test_core.sh compiles (kotlinc from npm) and runs JUnit's console launcher once;
here one pytest test per Kotlin test class, and one for the glue, so CI's summary line counts them.
The Android app itself (Compose screen, APK) cannot be built here: no Android SDK or Google Maven."""

from __future__ import annotations

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from needs import require_tool

ANDROID = Path(__file__).resolve().parents[2] / "android_demo"
TESTS = ANDROID / "core/src/test/kotlin/org/tomobile/core"
CLASSES = sorted(p.stem for p in TESTS.glob("*Test.kt"))
GLUE_OK = "test-android: ExecuTorch glue compiled against the compile-only stubs"


@pytest.fixture(scope="session")
def android_tools() -> None:
    """What test_core.sh needs (`make android-setup` installs it), checked before the export."""
    for present, what in ((shutil.which("javac") is not None, "a JDK (javac; Debian openjdk-17-jdk-headless)"),
                          (Path("/usr/share/java/junit-platform-console-standalone.jar").exists(), "JUnit 5 (Debian junit5)"),
                          ((ANDROID / "node_modules/kotlin-compiler/bin/kotlinc").exists(), "kotlinc (npm ci in android_demo/)")):
        require_tool(present, f"{what} is missing; run `make android-setup`")


@pytest.fixture(scope="session")
def junit_run(android_tools, video_export: Path, wan_export: Path) -> tuple[subprocess.CompletedProcess, dict[str, list[ET.Element]]]:
    """test_core.sh on the session's exports; its output and the JUnit test cases per class."""
    proc = subprocess.run(["bash", "tools/test_core.sh", sys.executable, str(video_export), str(wan_export)], cwd=ANDROID,
                          capture_output=True, text=True, timeout=1800)
    if proc.returncode == 2 and "make android-setup" in proc.stderr:
        pytest.fail(proc.stderr.strip())
    cases: dict[str, list[ET.Element]] = {}
    for report in (ANDROID / "build/junit-reports").glob("TEST-*.xml"):
        for case in ET.parse(report).getroot().iter("testcase"):
            cases.setdefault(case.get("classname", "").rsplit(".", 1)[-1], []).append(case)
    return proc, cases


def test_every_part_of_the_core_has_tests():
    assert {"NoiseTest", "TokenizerTest", "SamplerTest", "ManifestTest", "PipelineTest", "ContractTest",
            "WanContractTest"} <= set(CLASSES)


@pytest.mark.parametrize("name", CLASSES)
def test_junit_class(junit_run, name):
    proc, cases = junit_run
    ran = cases.get(name, [])
    assert ran, f"JUnit ran no test of {name}:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    failed = {c.get("name"): (c.find("failure") if c.find("failure") is not None else c.find("error")) for c in ran}
    failed = {n: f.get("message") or f.text for n, f in failed.items() if f is not None}
    skipped = [c.get("name") for c in ran if c.find("skipped") is not None]
    assert not failed and not skipped, f"{name}: failed {failed}, skipped {skipped}"


def test_executorch_glue_compiles_against_the_stubs(junit_run):
    proc, _ = junit_run
    assert GLUE_OK in proc.stdout, proc.stdout[-4000:] + proc.stderr[-4000:]
