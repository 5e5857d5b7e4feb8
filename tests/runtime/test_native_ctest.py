"""tomobile-native's own C++ tests (ctest, registered in runtime/native/CMakeLists.txt), run here so
`make test` and CI read them in pytest's summary; and the build type choosing the optimisation
level (Release by default), as CMake's build types do."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest

from tomobile.runtime.native_engine import BUILD_DIR, NATIVE_DIR, executorch_root


def test_ctest_passes(native):
    """The number rules on tests/number_cases.json (the table the Python parser is tested on), every
    key of a manifest deleted or retyped (a UserError or a manifest, never another exception), and
    main's last resort (exit 1 for a bug, 2 for bad input, one line each)."""
    proc = subprocess.run(["ctest", "--test-dir", str(BUILD_DIR), "--output-on-failure"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "100% tests passed, 0 tests failed out of 3" in proc.stdout, proc.stdout


def _compile_flags(tmp_path: Path, *options: str) -> list[str]:
    """The flags the engine's sources compile with, from a configure (no build) into tmp_path."""
    build = tmp_path / "build"
    subprocess.run(["cmake", "-S", str(NATIVE_DIR), "-B", str(build), f"-DEXECUTORCH_ROOT={executorch_root()}",
                    "-DCMAKE_EXPORT_COMPILE_COMMANDS=ON", *options], check=True, capture_output=True, timeout=300)
    commands = json.loads((build / "compile_commands.json").read_text())
    (main,) = [c for c in commands if c["file"].endswith("src/main.cpp")]
    return shlex.split(main["command"])


@pytest.mark.parametrize("build_type, want, refused", [(None, {"-O3"}, {"-O2", "-O0", "-g"}),
                                                       ("Debug", {"-g"}, {"-O2", "-O3"}),
                                                       ("RelWithDebInfo", {"-O2", "-g"}, {"-O3"})])
def test_the_build_type_sets_the_optimisation_level(native, tmp_path, build_type, want, refused):
    """The sources once compiled with -O2 whatever the build type (Debug got -g -O2)."""
    flags = set(_compile_flags(tmp_path, *([f"-DCMAKE_BUILD_TYPE={build_type}"] if build_type else [])))
    assert want <= flags and not refused & flags, sorted(flags)
