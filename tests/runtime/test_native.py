"""tomobile-native (runtime/native/, C++ on ExecuTorch's runtime): built, then validate on the
vit-tiny and video-dit-micro exports against the Python runtime's figures, stream on the micro
split at a small and an all-resident budget, and bad input (one line, exit 2, nothing written).
video-dit-tiny's split (validate and stream, both budgets) is slow: `make test-all`."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tomobile.runtime.native_engine import BINARY
from tomobile.runtime.validate import validate_dir


def run(binary: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True, timeout=600)


def test_the_engine_builds_and_refuses_bad_usage(native, tmp_path):
    assert native == BINARY and native.is_file()
    assert run(native, "--help").returncode == 0
    for args, says in ((["nonsense"], "unknown command 'nonsense'"),
                       (["validate", tmp_path / "none"], "is not a folder"),
                       (["validate", tmp_path], "has no manifest.json"),
                       (["stream", tmp_path], "--memory-budget SIZE is required"),
                       (["stream", tmp_path, "--memory-budget", "1MB", "--steps", "0"], "--steps 0 is out of range")):
        proc = run(native, *args)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("tomobile-native: error: ")
        assert says in proc.stderr


def python_rows(folder: Path) -> dict[tuple[str, str, str], float]:
    """The Python runtime's max abs error per (artifact, case, output) of the ExecuTorch rows (a weight
    group's methods are rows `G.pte:P`)."""
    report = validate_dir(folder, progress=False)
    return {(c.artifact, c.case, c.output): c.max_abs_error for c in report.checks
            if c.artifact.endswith(".pte") or ".pte:" in c.artifact or c.artifact.endswith("(executorch)")}


def native_validate(native: Path, folder: Path, tmp_path: Path) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "validate.json"
    proc = run(native, "validate", folder, "--json", out, "-q")
    return proc, json.loads(out.read_text())


@pytest.mark.parametrize("fixture", ["vit_tiny_export", "micro_split_export"])
def test_validate_gives_the_python_runtimes_numbers(native, fixture, request, tmp_path):
    folder = request.getfixturevalue(fixture)
    proc, report = native_validate(native, folder, tmp_path)
    assert proc.returncode == 0 and report["passed"], proc.stdout + proc.stderr
    assert "validation PASSED" in proc.stdout
    python = python_rows(folder)
    native_rows = {(r["artifact"], r["case"], r["output"]): r["max_abs_error"] for r in report["checks"]}
    assert native_rows.keys() == python.keys()
    # Same program, same runtime sources, same inputs: the outputs are equal bit for bit, so is the error.
    worst = max(abs(native_rows[k] - python[k]) for k in python)
    assert worst == 0.0, {k: (native_rows[k], python[k]) for k in python if native_rows[k] != python[k]}
    if fixture == "micro_split_export":
        assert any(k[0].startswith("chain denoiser") for k in native_rows)


def part_sizes(folder: Path) -> dict[str, int]:
    split = json.loads((folder / "manifest.json").read_text())["split"]
    return {p["name"]: p["files"]["executorch"]["total_bytes"] for p in split["parts"]}


def stream(native: Path, folder: Path, tmp_path: Path, *args) -> tuple[subprocess.CompletedProcess, dict | None]:
    out = tmp_path / "stream.json"
    out.unlink(missing_ok=True)
    proc = run(native, "stream", folder, "--steps", 3, "--threads", 2, "--json", out, "-q", *args)
    return proc, json.loads(out.read_text()) if out.exists() else None


@pytest.mark.parametrize("prefetch", [True, False])
@pytest.mark.parametrize("share", ["small", "all"])
def test_stream_matches_the_monolithic_program_under_the_budget(native, micro_split_export, tmp_path, share, prefetch):
    sizes = part_sizes(micro_split_export)
    sequences = json.loads((micro_split_export / "manifest.json").read_text())["split"]["sequences"]
    seq = next(iter(sequences.values()))  # the variant the engine streams by default
    total = sum(sizes[n] for n in dict.fromkeys(seq))
    budget = 2 * max(sizes.values()) if share == "small" else total
    proc, out = stream(native, micro_split_export, tmp_path, "--memory-budget", budget,
                       *([] if prefetch else ["--no-prefetch"]))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert out["check"]["passed"] and out["check"]["max_abs_error_vs_monolithic"] <= 1e-5
    steps = out["steps"]
    assert len(steps) == 3 and all(s["parts_run"] == len(seq) for s in steps)
    assert all(0 < s["resident_max_bytes"] <= budget for s in steps)
    assert all(s["peak_rss_bytes"] > 0 and s["peak_rss_anon_bytes"] > 0 for s in steps)
    if share == "all":  # every part loaded once, in the first step, and kept
        assert steps[0]["parts_loaded"] == len(set(seq)) and all(s["parts_loaded"] == 0 for s in steps[1:])
        assert sorted(out["pinned"]) == sorted(set(seq))
    else:  # parts load and go every step
        assert all(s["parts_loaded"] > 0 for s in steps[1:]) and len(out["pinned"]) < len(set(seq))
    background = sum(s["parts_prefetched"] for s in steps)
    assert (background > 0) == prefetch  # with prefetch the loader thread loads (all-resident: in the first step)
    for s in steps:
        assert s["hidden_s"] <= s["load_s"] + 1e-9 and s["waited_s"] <= s["latency_s"]


def test_monolithic_mode_is_the_reference(native, micro_split_export, tmp_path):
    proc, out = stream(native, micro_split_export, tmp_path, "--monolithic")
    assert proc.returncode == 0, proc.stderr
    assert out["mode"] == "monolithic" and out["steps"][0]["parts_loaded"] == 1 and out["check"]["passed"]


@pytest.fixture
def micro_copy(micro_split_export, tmp_path) -> Path:
    return Path(shutil.copytree(micro_split_export, tmp_path / "micro"))


def _one_line_exit_2(proc, out, says: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("tomobile-native: error: "), proc.stderr
    assert says in proc.stderr and out is None


def test_bad_input_is_one_line_and_exit_2(native, micro_copy, tmp_path):
    sizes = part_sizes(micro_copy)
    top = max(sizes.values())  # a block's plain and merged parts share their files: a tie
    proc, out = stream(native, micro_copy, tmp_path, "--memory-budget", top - 1)
    _one_line_exit_2(proc, out, "is below the largest part, ")
    assert any(f"largest part, {name} (" in proc.stderr for name, size in sizes.items() if size == top), proc.stderr
    proc, out = stream(native, micro_copy, tmp_path, "--memory-budget", "lots")
    _one_line_exit_2(proc, out, "is not a size")
    ptd = next(micro_copy.glob("dit_spatial*.ptd"))
    data = bytearray(ptd.read_bytes())
    data[len(data) // 2] ^= 0xFF
    ptd.write_bytes(bytes(data))
    proc, out = stream(native, micro_copy, tmp_path, "--memory-budget", "1GB")
    _one_line_exit_2(proc, out, f"{ptd.name} does not match its sha256")
    proc = run(native, "validate", micro_copy, "--json", tmp_path / "v.json")
    _one_line_exit_2(proc, None, "does not match its sha256")
    assert not (tmp_path / "v.json").exists()
    ptd.unlink()
    proc, out = stream(native, micro_copy, tmp_path, "--memory-budget", "1GB")
    _one_line_exit_2(proc, out, f"{ptd.name} is missing")
    proc = run(native, "validate", micro_copy, "--json", tmp_path / "v.json")
    _one_line_exit_2(proc, None, f"{ptd.name} is listed in the manifest but missing")
    assert not (tmp_path / "v.json").exists()


def test_a_part_swapped_for_another_is_named(native, micro_copy, tmp_path):
    """Two parts' weight files exchanged (each intact, in the wrong place): named as the other part."""
    split = json.loads((micro_copy / "manifest.json").read_text())["split"]
    weights = [p["files"]["executorch"]["weights"]["path"] for p in split["parts"]
               if "weights" in p["files"]["executorch"]]
    first, second = (micro_copy / w for w in weights[:2])
    a, b = first.read_bytes(), second.read_bytes()
    assert a != b
    first.write_bytes(b)
    second.write_bytes(a)
    proc, out = stream(native, micro_copy, tmp_path, "--memory-budget", "1GB")
    _one_line_exit_2(proc, out, f"{first.name} holds {weights[1]} (a different part)")


@pytest.mark.slow(reason="video-dit-tiny's split export takes minutes (over 5 CPU-minutes here)")
def test_validate_and_stream_on_tiny(native, tiny_split_export, tmp_path):
    proc, report = native_validate(native, tiny_split_export, tmp_path)
    assert proc.returncode == 0 and report["passed"], proc.stdout + proc.stderr
    python = python_rows(tiny_split_export)
    native_rows = {(r["artifact"], r["case"], r["output"]): r["max_abs_error"] for r in report["checks"]}
    assert native_rows.keys() == python.keys() and all(native_rows[k] == python[k] for k in python)
    sizes = part_sizes(tiny_split_export)
    for budget in (2 * max(sizes.values()), sum(sizes.values())):
        proc, out = stream(native, tiny_split_export, tmp_path, "--memory-budget", budget)
        assert proc.returncode == 0 and out["check"]["passed"], proc.stdout + proc.stderr


def test_time_reports_per_call_figures(native, vit_tiny_export, tmp_path):
    proc = run(native, "time", vit_tiny_export, "--runs", 5, "--threads", 1, "--json", tmp_path / "t.json")
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads((tmp_path / "t.json").read_text())
    assert row["artifact"] == "model.pte" and len(row["runs_ms"]) == 5 and row["threads"] == 1
    assert 0 < row["min_ms"] <= row["median_ms"] and "per call median" in proc.stdout
    assert len(row["cpu_ms"]) == 5 and all(0 < c for c in row["cpu_ms"])  # process CPU time per call


def test_bench_runs_native_rows_in_fresh_children(native, micro_split_export):
    from tomobile.runtime.stream_bench import NATIVE, Mode, run_bench
    from tomobile.runtime.stream_report import format_table, goals

    sizes = part_sizes(micro_split_export)
    sequences = json.loads((micro_split_export / "manifest.json").read_text())["split"]["sequences"]
    variant = next(iter(sequences))
    total = sum(sizes[n] for n in dict.fromkeys(sequences[variant]))
    small = 2 * max(sizes.values())
    modes = [Mode(NATIVE, False), Mode(NATIVE, True, True, small, "small"), Mode(NATIVE, True, True, total, "100%")]
    mono, streamed, resident = run_bench(micro_split_export, variant, modes, 3, 1, progress=False, native=native)
    for r in (mono, streamed, resident):
        assert len(r.steps_s) == 3 and r.peak_rss > 0 and r.max_abs_err <= 1e-4
        assert r.baseline_rss < 100e6  # no interpreter, no torch: the C++ process starts small
        assert r.timeline  # the parent sampled the child's memory
    assert mono.load_s > 0 and streamed.loads_per_step > 0 and resident.loads_per_step == 0
    assert 0 < streamed.resident_max <= small
    assert NATIVE in format_table([mono, streamed, resident])
    assert any(g.startswith(f"{NATIVE}: step with prefetch") for g, _, _ in goals([mono, streamed, resident]))


def test_bench_cli_native_adds_rows_beside_the_python_ones(native, micro_split_export, tmp_path, capsys):
    from tomobile.cli.main import main

    work = Path(shutil.copytree(micro_split_export, tmp_path / "work"))
    out = tmp_path / "bench.json"
    assert main(["-q", "bench", "video-dit-micro", "--stream", "--reuse", "--work", str(work), "--runtime",
                 "onnxruntime", "--native", "--budgets", "100%", "--steps", "2", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    runtimes = [row["runtime"] for row in rows]
    assert runtimes.count("onnxruntime") == 3 and runtimes.count("executorch-native") == 3
    assert all(row["max_abs_err"] < 1e-4 and row["peak_rss"] > 0 for row in rows)
    assert "executorch-native" in capsys.readouterr().out
