"""Only a TomobileError (or FileNotFoundError) is bad input: one line, exit 2. Any other exception,
a plain ValueError too, is a bug and keeps its traceback (exit 1). --debug / TOMOBILE_DEBUG=1 show
the traceback of a user error as well."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tomobile.cli import cmd_models
from tomobile.cli.main import main
from tomobile.graphs.errors import TomobileError
from tomobile.graphs.spec.grammar import SpecError

BAD_SPEC = ["export", "vit-tiny", "--merge", "tome:r=abc", "--format", "onnx"]


def test_user_error_is_one_line_without_debug(capfd, tmp_path):
    assert main([*BAD_SPEC, "--out", str(tmp_path / "o")]) == 2
    err = capfd.readouterr().err
    assert err.startswith("tomobile: error: ") and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("where", ["top", "after the subcommand", "env"])
def test_debug_shows_the_traceback_of_a_user_error(capfd, tmp_path, monkeypatch, where):
    argv = [*BAD_SPEC, "--out", str(tmp_path / "o")]
    if where == "top":
        argv = ["--debug", *argv]
    elif where == "after the subcommand":
        argv = [*argv, "--debug"]
    else:
        monkeypatch.setenv("TOMOBILE_DEBUG", "1")
    assert main(argv) == 2
    err = capfd.readouterr().err
    assert "Traceback (most recent call last)" in err and "SpecError" in err
    assert err.strip().splitlines()[-1].startswith("tomobile: error: ")


def test_a_plain_value_error_is_a_bug_not_bad_input(monkeypatch):
    def broken():
        raise ValueError("a bug's ValueError, as numpy or torch raise them")

    monkeypatch.setattr(cmd_models, "builtin_models", broken)
    with pytest.raises(ValueError, match="a bug's ValueError"):
        main(["models"])


def test_a_bug_in_a_real_process_prints_its_traceback_and_exits_1():
    code = ("import sys; from tomobile.cli import cmd_models; from tomobile.cli.main import main\n"
            "def broken(): raise KeyError('bug')\n"
            "cmd_models.builtin_models = broken\n"
            "sys.exit(main(['models']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr and "KeyError: 'bug'" in proc.stderr
    assert "tomobile: error:" not in proc.stderr


def test_every_user_error_class_derives_from_tomobile_error():
    from tomobile.export.opcheck import UnsupportedOpError
    from tomobile.export.output import OutputError
    from tomobile.export.registry import FormatError, OptionError
    from tomobile.graphs.models.hf_folder import FolderError
    from tomobile.graphs.models.registry import UnknownModelError
    from tomobile.runtime.manifest import ManifestError
    from tomobile.runtime.report import ValidationError
    from tomobile.runtime.streaming import StreamError

    for cls in (SpecError, FolderError, UnknownModelError, OutputError, UnsupportedOpError, FormatError, OptionError,
                StreamError, ValidationError, ManifestError):
        assert issubclass(cls, TomobileError), cls
