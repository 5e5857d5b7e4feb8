"""tomobile-native on bad input, table-driven (issue 33 items 1-7 and 20, issue 34 item 7): each case
is one command on a copy of a split export (video-dit-micro, ONNX + ExecuTorch) edited as a user or
an attacker would. Each answers as promised: one `tomobile-native: error:` line and exit 2, or a
FAIL row of `validate` and exit 1; none ends in a signal. The number cases come from the table the
Python parser is tested on (tests/number_cases.json)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tomobile.cli.checks import MAX_THREADS

NUMBER_CASES = json.loads((Path(__file__).parents[1] / "number_cases.json").read_text())


def run(binary: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True, timeout=600)


def assert_answered(proc: subprocess.CompletedProcess, code: int, says: str) -> None:
    """Exit `code` (never a signal: a negative return code, or abort's 134 and a segfault's 139
    through a shell); exit 2 says `says` in one stderr line, exit 1 in a FAIL row."""
    assert proc.returncode >= 0 and proc.returncode not in (134, 139), (proc.returncode, proc.stderr[-2000:])
    assert proc.returncode == code, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    if code == 2:
        assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("tomobile-native: error: "), proc.stderr
        assert says in proc.stderr, proc.stderr
    else:
        assert "validation FAILED" in proc.stdout and says in proc.stdout, proc.stdout
        assert "internal error" not in proc.stderr, proc.stderr


Edit = Callable[[dict], None]  # changes the loaded manifest in place


def first_variant(m: dict) -> str:
    return next(iter(m["split"]["sequences"]))


def executorch_artifact(m: dict, part: str) -> dict:
    return next(a for a in m["artifacts"] if a["format"] == "executorch" and a["part"] == part)


def split_part(m: dict, name: str) -> dict:
    return next(p for p in m["split"]["parts"] if p["name"] == name)


def without_executorch(m: dict, relabel: str | None = None) -> None:
    """What an ONNX-only (or, relabelled, a Core AI-only) export's manifest lists."""
    m["artifacts"] = [a for a in m["artifacts"] if a["format"] != "executorch"]
    for p in m["split"]["parts"]:
        p["files"].pop("executorch")
    if relabel:
        for a in m["artifacts"]:
            a["format"] = relabel
        for p in m["split"]["parts"]:
            p["files"] = {relabel: p["files"]["onnx"]}


def drop_last_input_of_last_part(m: dict) -> None:
    last = m["split"]["sequences"][first_variant(m)][-1]
    split_part(m, last)["inputs"].pop()


def retype(path: list, value) -> Edit:
    def edit(m: dict) -> None:
        node = m
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return edit


@dataclass(frozen=True)
class Case:
    name: str
    args: tuple  # DIR stands for the edited copy
    code: int
    says: str
    edit: Edit | None = None
    raw: bytes = b""  # bytes appended to manifest.json after the edit


STREAM = ("stream", "DIR", "--memory-budget", "1GB", "--steps", "1", "-q")
MONOLITHIC = ("stream", "DIR", "--monolithic", "--steps", "1", "-q")
VALIDATE = ("validate", "DIR", "-q")
TIME = ("time", "DIR", "--runs", "1")
SEQUENCE = ["split", "sequences"]


def _method(m: dict) -> None:
    executorch_artifact(m, first_variant(m))["method"] = "nope"


def _part_method(m: dict) -> None:
    seq = m["split"]["sequences"][first_variant(m)]
    split_part(m, seq[1])["files"]["executorch"]["method"] = "nope"


def _empty_sequence(m: dict) -> None:
    m["split"]["sequences"][first_variant(m)] = []


def _missing_part(m: dict) -> None:
    m["split"]["sequences"][first_variant(m)][1] = "dit_nowhere"


def _sha(value: str) -> Edit:
    def edit(m: dict) -> None:
        m["split"]["parts"][1]["files"]["executorch"]["sha256"] = value
    return edit


def _unsplit(model: str) -> Edit:
    def edit(m: dict) -> None:
        del m["split"]
        m["model"] = model
    return edit


CASES = [
    # 1: a thread count past 4 x the cores crashed validate and time (segfault) and aborted stream
    *(Case(f"threads-{a[0]}", (*a, "--threads", "100000"), 2, "--threads 100000 is out of range; give an integer from 1 to")
      for a in (VALIDATE, STREAM, TIME)),
    # 2: split sequences that are empty, name a missing part, or are missing altogether
    *(Case(f"empty-sequence-{a[0]}", a, 2, "is empty", _empty_sequence) for a in (VALIDATE, STREAM)),
    *(Case(f"missing-part-{a[0]}", a, 2, "names part 'dit_nowhere', which split.parts lacks", _missing_part)
      for a in (VALIDATE, STREAM)),
    *(Case(f"no-sequences-{a[0]}", a, 2, "split.sequences is empty", retype(SEQUENCE, {})) for a in (VALIDATE, STREAM)),
    # 3: a method the program lacks: one line where it must run, a FAIL row in validate
    *(Case(f"method-{a[0]}{'-mono' if a is MONOLITHIC else ''}", a, 2, "has no method 'nope'", _method)
      for a in (STREAM, MONOLITHIC, TIME)),
    Case("method-validate", VALIDATE, 1, "has no method 'nope'", _method),
    Case("part-method-stream", STREAM, 2, "has no method 'nope'", _part_method),
    Case("part-method-validate", VALIDATE, 1, "has no method 'nope'", _part_method),
    # 4: wrong JSON types and an edited inputs list
    *(Case(f"total-bytes-{a[0]}", a, 2, "total_bytes is \"abc\", not a non-negative integer",
           retype(["split", "parts", 0, "files", "executorch", "total_bytes"], "abc")) for a in (VALIDATE, STREAM, TIME)),
    Case("parts-not-object", VALIDATE, 2, "parts is a JSON array, not an object", retype(["parts"], [])),
    Case("inputs-edited-stream", STREAM, 2, "inputs, the folder gives", drop_last_input_of_last_part),
    Case("inputs-edited-validate", VALIDATE, 1, "inputs, the folder gives", drop_last_input_of_last_part),
    # 5: no ExecuTorch program in the folder
    *(Case(f"{kind or 'onnx'}-only-{a[0]}", a, 2, says, lambda m, kind=kind: without_executorch(m, kind))
      for kind in (None, "coreai")
      for a, says in ((VALIDATE, "holds no ExecuTorch program"), (TIME, "holds no ExecuTorch program"),
                      (STREAM, "has no executorch parts"))),
    # 6: a split part's file record edited: validate checks every record the manifest holds
    *(Case(f"part-sha-{a[0]}", a, 2, says, _sha("0" * 64))
      for a, says in ((VALIDATE, "does not match its sha256"), (STREAM, "does not match its sha256"))),
    Case("part-sha-65-chars", VALIDATE, 2, "is not a sha256 (64 hex digits)", _sha("a" * 65)),
    # 7: bytes after the manifest's JSON (a NUL byte ended nlohmann's input: what followed was ignored)
    Case("nul-then-garbage", VALIDATE, 2, "a NUL byte at offset", raw=b"\x00garbage"),
    Case("second-value", VALIDATE, 2, "is not valid JSON", raw=b" {}"),
    # 20: a folder that is not split: the suggested command must be one that works
    Case("unsplit-video", STREAM, 2, "`tomobile export video-dit-micro --split blocks --format executorch", _unsplit("video-dit-micro")),
    Case("unsplit-vit", STREAM, 2, "streaming runs a split video denoiser (video-dit-tiny", _unsplit("vit-tiny")),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_bad_folder_is_answered_in_one_line(native, micro_split_export, tmp_path, case):
    folder = Path(shutil.copytree(micro_split_export, tmp_path / "dir"))
    manifest = folder / "manifest.json"
    if case.edit is not None:
        data = json.loads(manifest.read_text())
        case.edit(data)
        manifest.write_text(json.dumps(data, indent=2))
    if case.raw:
        manifest.write_bytes(manifest.read_bytes() + case.raw)
    proc = run(native, *(folder if a == "DIR" else a for a in case.args))
    assert_answered(proc, case.code, case.says)
    if case.name == "unsplit-vit":
        assert "vit-tiny --split" not in proc.stderr


def _expand(text: str) -> str:
    return text.replace("{max_threads+1}", str(MAX_THREADS + 1)).replace("{max_threads}", str(MAX_THREADS))


@pytest.mark.parametrize("case", NUMBER_CASES["cases"], ids=lambda c: f"{c['option']}={c['text']!a}")
def test_number_rules_end_to_end(native, tmp_path, case):
    """Each number of the shared table on the command line: a refused one is named in one line
    (exit 2) before any work; an accepted one gets past the options to the missing folder."""
    text = _expand(case["text"])
    args = {"--memory-budget": ["stream", "--memory-budget", text],
            "--steps": ["stream", "--memory-budget", "1GB", "--steps", text],
            "--runs": ["time", "--runs", text],
            "--threads": ["validate", "--threads", text]}[case["option"]]
    proc = run(native, *args, tmp_path / "none")
    says = "is not a folder" if case["value"] is not None else f"error: {case['option']} "
    assert_answered(proc, 2, says)
