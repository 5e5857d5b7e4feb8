"""Instruction counting (runtime/count.py) and bench's three figures: parsing callgrind's dumps,
the plumbing from counts and CPU times to rows, verdicts and the table. No speed is asserted."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from needs import require_tool

from tomobile.runtime.bench import RUNTIMES, Timings, Variant, _add_counts, _rows, timed_round_robin
from tomobile.runtime.bench_report import BenchReport, format_table, verdicts
from tomobile.runtime.count import MARK, CountError, count_instructions, counting_library, parse_calls

DUMP = """version: 1
creator: callgrind-3.19.0
cmd:  python child.py
part: {part}
desc: I1 cache: 
desc: Timerange: Basic block 0 - 1285000
desc: Trigger: {trigger}

positions: line
events: Ir
summary: {count}

fl=(1) ???
fn=(1) 0x000
0 {count}

totals: {count}
"""


def test_parse_calls_reads_the_dump_marked_at_the_stop_request():
    marked = DUMP.format(part=1, trigger=f"Client Request: {MARK}", count=27298142)
    at_exit = DUMP.format(part=2, trigger="Program termination", count=11)
    assert parse_calls([at_exit, marked]) == 27298142
    assert parse_calls([marked.replace("summary: 27298142\n", "")]) == 27298142  # totals alone
    with pytest.raises(CountError, match="found 0"):
        parse_calls([at_exit])
    with pytest.raises(CountError, match="found 2"):
        parse_calls([marked, marked])
    with pytest.raises(CountError, match="found 0"):  # another client request's dump is not ours
        parse_calls([DUMP.format(part=1, trigger="Client Request: other", count=5)])


def _variants() -> list[Variant]:
    return [Variant("r=0", 0, Path("."), 1.0, "none"), Variant("r=8", 8, Path("."), 1.34, "tome", "drop r=8"),
            Variant("drop r=8", 8, Path("."), 1.34, "drop")]


def test_rows_carry_cpu_time_and_counts_with_the_figure_each_verdict_rests_on():
    wall = {"r=0": [1.0, 1.2, 1.1], "r=8": [0.84, 0.9, 0.8], "drop r=8": [0.8, 0.75, 0.8]}
    cpu = {"r=0": [2.0, 2.0, 2.0], "r=8": [1.1, 1.2, 1.0], "drop r=8": [1.0, 1.0, 1.0]}
    one = _rows(RUNTIMES["onnxruntime"], _variants(), Timings(wall, cpu), threads=1)
    assert one[1].cpu_ms == pytest.approx(1100.0) and one[1].cpu_speedup == pytest.approx(2.0 / 1.1)
    assert one[1].cpu_overhead == pytest.approx(0.1)
    assert one[1].cpu_overhead_q1 == pytest.approx(0.05) and one[1].cpu_overhead_q3 == pytest.approx(0.15)
    assert one[1].verdict == "cpu"  # CPU time is the call's own work at 1 thread
    two = _rows(RUNTIMES["onnxruntime"], _variants(), Timings(wall, cpu), threads=2)
    assert two[1].verdict == "wall"  # at 2 threads spinning workers inflate CPU time
    assert _rows(RUNTIMES["onnxruntime"], _variants(), wall, threads=1)[1].cpu_ms is None  # wall times alone

    _add_counts(one, _variants(), {"r=0": 2.0e9, "r=8": 1.1e9, "drop r=8": 1.0e9})
    assert one[1].instructions == 1.1e9 and one[1].instr_speedup == pytest.approx(2.0 / 1.1)
    assert one[1].instr_overhead == pytest.approx(0.1) and one[0].instr_overhead is None
    assert one[1].verdict == "instructions"
    _add_counts(one, _variants(), {"r=0": 3.0e9, "r=8": 1.5e9, "drop r=8": 1.2e9}, native=True)
    assert one[1].native_instructions == 1.5e9 and one[1].native_overhead == pytest.approx(0.25)
    assert one[1].instructions == 1.1e9  # the bindings' count stays

    report = BenchReport("m", [1, 2], 3, one + two)
    assert verdicts(report) == [
        "onnxruntime x1 r=8: 1.82x unmerged, +10.0% over its drop twin (instructions per call (callgrind, 1 thread))",
        "onnxruntime x2 r=8: 1.31x unmerged, +5.0% over its drop twin (wall time per call)"]
    table = format_table(report)
    assert "cpu overhead" in table and "1.1G" in table and "1.5G" in table and "+25.0%" in table
    plain = format_table(BenchReport("m", [2], 3, _rows(RUNTIMES["onnxruntime"], _variants(), wall, threads=2)))
    assert "cpu ms" not in plain and "instr/call" not in plain  # columns no row fills are left out


def test_timed_round_robin_records_wall_and_cpu_per_call():
    fns = {n: (lambda: sum(range(20000))) for n in "ab"}
    times = timed_round_robin(fns, runs=3, warmup=0, progress=False)
    assert {k: len(v) for k, v in times.wall.items()} == {k: len(v) for k, v in times.cpu.items()} == {"a": 3, "b": 3}
    assert all(t >= 0 for t in times.cpu["a"] + times.wall["b"])


def test_callgrind_counts_only_the_bracketed_calls_and_repeats():
    """A real count: a Python child brackets N loops with the counting library's requests. The same
    child counts the same; twice the loop counts about twice as much."""
    require_tool(shutil.which("valgrind") is not None and shutil.which("cmake") is not None,
                 "valgrind and the native build tools are needed; `make native` installs them")
    lib = counting_library()

    def child(n: int) -> list[str]:
        code = (f"import ctypes; lib = ctypes.CDLL({str(lib)!r}); lib.tomobile_count_start(); "
                f"sum(range({n})); lib.tomobile_count_stop()")
        return [sys.executable, "-c", code]

    small, again, large = (count_instructions(child(n), 1, timeout=300) for n in (100_000, 100_000, 200_000))
    # measured: 1 to 217 instructions apart in 17.8M (addresses, hashing, allocator state);
    # counting the interpreter's start-up instead of the bracket would add tens of millions
    assert abs(small - again) <= 1e-4 * small
    assert 1.8 < large / small < 2.2
    with pytest.raises(CountError, match="found 0"):  # a child that brackets nothing
        count_instructions([sys.executable, "-c", "pass"], 1, timeout=300)
