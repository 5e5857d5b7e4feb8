"""What `tomobile bench` reports: one row per runtime, thread count and variant, printed as a
table with one verdict line per merged variant, written as JSON, drawn as a plot.

Every row carries up to three figures side by side (runtime/bench.py): wall time, CPU time and
instructions per call. A verdict names the figure it rests on (`BenchRow.verdict`): instructions
where they were counted, CPU time at 1 thread, wall time otherwise; on a shared machine a 2%
verdict from wall time alone is a coin toss.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from .tables import aligned_table


@dataclass
class BenchRow:
    runtime: str
    label: str
    r: int
    median_ms: float
    min_ms: float
    max_ms: float
    speedup: float
    flop_ratio: float
    efficiency: float
    merge_share: float | None = None  # ONNX Runtime: share of node time in merge ops
    partitions: int | None = None  # ExecuTorch: XNNPACK delegate partitions
    portable_ops: list[str] = field(default_factory=list)  # ExecuTorch: operators outside the delegate
    threads: int = 1
    method: str = "tome"
    oracle_speedup: float | None = None  # speedup of the drop twin (same plan, no merge work)
    merge_overhead: float | None = None  # median(tome) / median(drop) - 1
    overhead_q1: float | None = None  # quartiles of the per-round ratio tome_i / drop_i - 1
    overhead_q3: float | None = None
    cpu_ms: float | None = None  # median CPU time per call (process_time: every thread of the process)
    cpu_speedup: float | None = None
    cpu_overhead: float | None = None  # median CPU(tome) / median CPU(drop) - 1
    cpu_overhead_q1: float | None = None
    cpu_overhead_q3: float | None = None
    instructions: float | None = None  # per call, callgrind, 1 thread, through the Python bindings
    instr_speedup: float | None = None
    instr_overhead: float | None = None
    native_instructions: float | None = None  # ExecuTorch: per call in the native engine (tomobile-native)
    native_overhead: float | None = None
    verdict: str = "wall"  # the figure speedup and overhead verdicts rest on: instructions | cpu | wall
    round_robin: bool = True  # False: the variants did not fit in memory together and were timed one after another


@dataclass
class BenchReport:
    model: str
    threads: list[int]
    runs: int
    rows: list[BenchRow] = field(default_factory=list)
    eager: list[dict] = field(default_factory=list)  # reference-vs-static rows (reference_merge.py)

    def to_json(self) -> dict:
        out: dict = {"model": self.model, "threads": self.threads, "runs": self.runs, "runtimes": {}}
        for row in self.rows:
            out["runtimes"].setdefault(row.runtime, {}).setdefault(str(row.threads), {})[row.label] = asdict(row)
        out["eager_merge"] = self.eager
        return out


FIGURES = {"instructions": "instructions per call (callgrind, 1 thread)", "cpu": "CPU time per call",
           "wall": "wall time per call"}


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:+.1f}%"


def _iqr(q1: float | None, q3: float | None) -> str:
    return "-" if q1 is None else f"{_pct(q1)}..{_pct(q3)}"


def _num(value: float | None, spec: str, scale: float = 1.0) -> str:
    return "-" if value is None else format(value / scale, spec)


def _count(value: float | None) -> str:
    """An instruction count in 4 significant digits with its unit: 6.953M, 1.204G."""
    if value is None:
        return "-"
    scale, unit = (1e9, "G") if value >= 1e9 else (1e6, "M")
    return f"{value / scale:.4g}{unit}"


def format_table(report: BenchReport) -> str:
    """The rows as an aligned text table; columns no row fills (no CPU time, nothing counted) are left out."""
    columns = (
        ("runtime", lambda r: r.runtime), ("threads", lambda r: str(r.threads)), ("variant", lambda r: r.label),
        ("median ms", lambda r: f"{r.median_ms:.1f}"), ("min ms", lambda r: f"{r.min_ms:.1f}"),
        ("max ms", lambda r: f"{r.max_ms:.1f}"), ("cpu ms", lambda r: _num(r.cpu_ms, ".1f")),
        ("instr/call", lambda r: _count(r.instructions)),
        ("native instr/call", lambda r: _count(r.native_instructions)),
        ("speedup", lambda r: f"{r.speedup:.2f}"), ("cpu speedup", lambda r: _num(r.cpu_speedup, ".2f")),
        ("instr speedup", lambda r: _num(r.instr_speedup, ".2f")), ("FLOP ratio", lambda r: f"{r.flop_ratio:.2f}"),
        ("oracle speedup", lambda r: _num(r.oracle_speedup, ".2f")), ("merge overhead", lambda r: _pct(r.merge_overhead)),
        ("overhead IQR", lambda r: _iqr(r.overhead_q1, r.overhead_q3)), ("cpu overhead", lambda r: _pct(r.cpu_overhead)),
        ("cpu overhead IQR", lambda r: _iqr(r.cpu_overhead_q1, r.cpu_overhead_q3)),
        ("instr overhead", lambda r: _pct(r.instr_overhead)), ("native instr overhead", lambda r: _pct(r.native_overhead)),
        ("merge share", lambda r: "-" if r.merge_share is None else f"{100 * r.merge_share:.1f}%"),
        ("partitions", lambda r: "-" if r.partitions is None else str(r.partitions)),
        ("portable ops", lambda r: ", ".join(op.removeprefix("aten::") for op in r.portable_ops) or "-"),
    )
    optional = {"cpu ms", "instr/call", "native instr/call", "cpu speedup", "instr speedup", "cpu overhead",
                "cpu overhead IQR", "instr overhead", "native instr overhead"}
    cells = [[fn(r) for _, fn in columns] for r in report.rows]
    keep = [i for i, (name, _) in enumerate(columns) if name not in optional or any(c[i] != "-" for c in cells)]
    return aligned_table([[columns[i][0] for i in keep]] + [[c[i] for i in keep] for c in cells])


def verdicts(report: BenchReport) -> list[str]:
    """One line per variant with a drop twin: its speedup and merge overhead in the figure its
    verdict rests on, that figure named."""
    lines = []
    for r in report.rows:
        if r.oracle_speedup is None:
            continue
        speedup, overhead = {"instructions": (r.instr_speedup, r.instr_overhead),
                             "cpu": (r.cpu_speedup, r.cpu_overhead)}.get(r.verdict, (r.speedup, r.merge_overhead))
        lines.append(f"{r.runtime} x{r.threads} {r.label}: {speedup:.2f}x unmerged, {_pct(overhead)} over its drop "
                     f"twin ({FIGURES[r.verdict]})")
    return lines


def save_plot(report: BenchReport, path: Path) -> None:
    """Speedup against r per runtime (ToMe solid, its drop oracle dashed) with the FLOP-ratio line,
    one panel per thread count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    threads = sorted({r.threads for r in report.rows})
    fig, axes = plt.subplots(1, len(threads), figsize=(6 * len(threads), 4), dpi=100, squeeze=False)
    flops = sorted({(r.r, r.flop_ratio) for r in report.rows if r.method != "drop"})
    for ax, n in zip(axes[0], threads, strict=True):
        runtimes = list(dict.fromkeys(r.runtime for r in report.rows if r.threads == n))
        for i, runtime in enumerate(runtimes):
            color = f"C{i}"
            rows = sorted((r for r in report.rows if r.runtime == runtime and r.threads == n), key=lambda r: r.r)
            tome = [r for r in rows if r.method != "drop"]
            ax.plot([r.r for r in tome], [r.speedup for r in tome], "o-", color=color, label=runtime)
            oracle = [r for r in rows if r.method == "none"] + [r for r in rows if r.method == "drop"]
            if len(oracle) > 1:
                ax.plot([r.r for r in oracle], [r.speedup for r in oracle], "x--", color=color, alpha=0.7,
                        label=f"{runtime} drop oracle")
        ax.plot([r for r, _ in flops], [f for _, f in flops], "k:", label="FLOP ratio")
        ax.set_xlabel("r (tokens merged per layer)")
        ax.set_ylabel("speedup vs unmerged")
        ax.set_title(f"{report.model}: {n} thread{'s' if n > 1 else ''}, median of {report.runs}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
