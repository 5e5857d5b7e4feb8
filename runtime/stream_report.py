"""Table, goals, JSON and memory-over-time plot of a streaming bench (runtime/stream_bench.py)."""

from __future__ import annotations

import re
from dataclasses import asdict
from pathlib import Path

from . import tables
from .stream_bench import ModeResult
from .streaming import mb

QUARTER = "25%"
LATENCY_GOAL = 1.10  # streamed + prefetch over all-resident, where a load is faster than a run
RSS_GOAL = 0.5  # streamed at a quarter of the weights over monolithic peak RSS


def _reference(results: list[ModeResult], runtime: str, kind: str) -> ModeResult | None:
    """monolithic, or all-resident (streamed + prefetch at the largest budget, which holds every part)."""
    rows = [r for r in results if r.mode.runtime == runtime]
    if kind == "monolithic":
        return next((r for r in rows if not r.mode.streamed), None)
    resident = [r for r in rows if r.mode.streamed and r.mode.prefetch and r.loads_per_step == 0]
    return max(resident, key=lambda r: r.mode.budget, default=None)


def format_table(results: list[ModeResult]) -> str:
    header = ("runtime", "mode", "budget", "peak RSS MB", "RssAnon MB", "RssFile MB", "RSS vs mono",
              "step s", "vs mono", "vs resident", "loads/step", "load s/step", "hidden", "max abs err")
    rows = [header]
    for r in results:
        mono, resident = _reference(results, r.mode.runtime, "monolithic"), _reference(results, r.mode.runtime, "resident")
        budget = r.mode.budget_label if not r.mode.streamed else f"{r.mode.budget_label} ({mb(r.mode.budget)})"
        hidden = f"{100 * r.hidden_s / r.load_s:.0f}%" if r.mode.streamed and r.load_s > 0 else "-"
        rows.append((r.mode.runtime, r.mode.name, budget, f"{r.peak_rss / 1e6:.0f}", f"{r.peak_anon / 1e6:.0f}",
                     f"{r.peak_file / 1e6:.0f}", _ratio(r.peak_rss, mono.peak_rss if mono else None),
                     f"{r.step_s:.2f}", _ratio(r.step_s, mono.step_s if mono else None),
                     _ratio(r.step_s, resident.step_s if resident and r.mode.streamed else None),
                     f"{r.loads_per_step:.0f}" if r.mode.streamed else "-",
                     f"{r.load_s:.2f}", hidden, f"{r.max_abs_err:.1e}"))
    return tables.aligned_table(rows)


def markdown_table(results: list[ModeResult]) -> str:
    """The same table as Markdown (for the README)."""
    text = format_table(results).splitlines()
    header = _cells(text[0])
    return tables.markdown_table(header, [_cells(line, len(header)) for line in text[2:]])


def _cells(line: str, n: int | None = None) -> list[str]:
    cells = re.split(r"\s{2,}", line.strip())
    return cells + ["-"] * ((n or len(cells)) - len(cells))


def _ratio(a: float, b: float | None) -> str:
    return f"{a / b:.2f}" if b else "-"


def goals(results: list[ModeResult]) -> list[tuple[str, str, bool]]:
    """(goal, measured, met) per runtime, from the issue: RSS at a quarter, latency with prefetch."""
    out = []
    for runtime in dict.fromkeys(r.mode.runtime for r in results):
        mono, resident = _reference(results, runtime, "monolithic"), _reference(results, runtime, "resident")
        quarter = [r for r in results if r.mode.runtime == runtime and r.mode.streamed and r.mode.budget_label == QUARTER]
        if mono and quarter:
            worst = max(quarter, key=lambda r: r.peak_rss)
            ratio = worst.peak_rss / mono.peak_rss
            out.append((f"{runtime}: peak RSS at {QUARTER} of the weights < {RSS_GOAL:.0%} of monolithic",
                        f"{worst.peak_rss / 1e6:.0f} / {mono.peak_rss / 1e6:.0f} MB = {ratio:.2f}", ratio < RSS_GOAL))
        prefetched = [r for r in results if r.mode.runtime == runtime and r.mode.prefetch and r.loads_per_step > 0]
        if resident and prefetched:
            worst = max(prefetched, key=lambda r: r.step_s)
            serial = [r for r in results if r.mode.runtime == runtime and r.mode.streamed and not r.mode.prefetch
                      and r.mode.budget_label == worst.mode.budget_label and r.loads_per_step > 0]
            out.append(_latency_goal(runtime, resident, worst, serial[0] if serial else worst))
    return out


def _latency_goal(runtime: str, resident: ModeResult, worst: ModeResult,
                  serial: ModeResult) -> tuple[str, str, bool]:
    """The issue's latency goal holds where loading a part is faster than running one; say which.

    A part's load time comes from `serial`, the run without prefetch at the same budget, where
    parts load on the compute thread: a prefetch thread's load time also counts its waits for the
    GIL (ExecuTorch holds it while it runs), which is not what loading costs."""
    ratio = worst.step_s / resident.step_s
    load_part = serial.load_s / serial.loads_per_step
    run_part = resident.step_s / max(resident.parts_per_step, 1)
    measured = (f"{worst.step_s:.2f} / {resident.step_s:.2f} s = {ratio:.2f} at {worst.mode.budget_label}; "
                f"{100 * worst.hidden_s / worst.load_s if worst.load_s else 0:.0f}% of loading hidden; "
                f"a load {load_part:.3f} s, a run {run_part:.3f} s per part")
    if serial is not worst:
        measured += f" (a load on the prefetch thread: {worst.load_s / worst.loads_per_step:.3f} s)"
    if load_part >= run_part:
        measured += " (loading is slower than running here: the goal does not apply)"
    return f"{runtime}: step with prefetch <= {LATENCY_GOAL:.2f}x all-resident", measured, ratio <= LATENCY_GOAL


def to_json(results: list[ModeResult], model: str, threads: int, steps: int) -> dict:
    rows = []
    for r in results:
        row = {k: v for k, v in asdict(r).items() if k != "timeline"}
        row.update(mode=r.mode.name, runtime=r.mode.runtime, budget=r.mode.budget_label, step_s=r.step_s)
        rows.append(row)
    return {"model": model, "threads": threads, "steps": steps, "rows": rows,
            "goals": [{"goal": g, "measured": m, "met": ok} for g, m, ok in goals(results)]}


def save_plot(results: list[ModeResult], path: Path, budget_label: str = QUARTER) -> None:
    """RSS over time (from the end of imports) of monolithic, streamed, streamed + prefetch at one
    budget, one panel per runtime; dashed: RssAnon alone."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runtimes = list(dict.fromkeys(r.mode.runtime for r in results))
    fig, axes = plt.subplots(1, len(runtimes), figsize=(6 * len(runtimes), 4), dpi=100, squeeze=False)
    colours = {"monolithic": "tab:red", "streamed": "tab:blue", "streamed + prefetch": "tab:green"}
    for ax, runtime in zip(axes[0], runtimes, strict=True):
        for r in results:
            if r.mode.runtime != runtime or (r.mode.streamed and r.mode.budget_label != budget_label):
                continue
            t = [s for s, _, _ in r.timeline]
            label = r.mode.name if not r.mode.streamed else f"{r.mode.name} ({budget_label})"
            ax.plot(t, [(a + f) / 1e6 for _, a, f in r.timeline], color=colours[r.mode.name], label=label)
            ax.plot(t, [a / 1e6 for _, a, _ in r.timeline], color=colours[r.mode.name], ls="--", lw=0.8)
        ax.set_title(f"{runtime}: RSS over time (dashed: RssAnon)")
        ax.set_xlabel("seconds since imports finished")
        ax.set_ylabel("MB")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
