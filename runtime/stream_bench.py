"""`tomobile bench MODEL --stream`: the monolithic denoiser against block streaming, in one run.

Every mode runs in a fresh child process (so each peak is its own: imports, loading, steps), on
the split export's seeded denoiser inputs, for a few denoiser calls (steps). The parent samples the
child's /proc status every few milliseconds (a child that holds the GIL cannot starve it) for the
memory-over-time plot; the child reports its exact peak (VmHWM), per-step latency and the
streamer's load statistics. Modes, per runtime:

    monolithic            denoiser.onnx / denoiser.pte loaded once, as `tomobile generate` does
    streamed              the parts under a budget, each loaded on its turn
    streamed + prefetch   the same, the next part loaded while the current one runs

`executorch-native` rows run the same modes in the native engine (`tomobile-native stream`,
runtime/native/): ExecuTorch's C++ runtime without Python, so its prefetch thread loads while the
compute thread runs (no interpreter lock between them).

Budgets are bytes or percentages of the variant's part bytes (100% keeps every part resident:
the all-resident reference). Modes run one after another, rotated between rounds, so a noisy
neighbour slows all of them alike; read the ratios.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .manifest import RUNTIME_FORMATS
from .manifest_reader import read_manifest
from .memory import proc_status
from .runners import part_runner
from .runners.coreai import exit_process
from .runners.executorch import set_executorch_threads
from .streaming import BlockStreamer, open_split

log = logging.getLogger(__name__)

SAMPLE_S = 0.01
NATIVE = "executorch-native"  # the runtime name of the native engine's rows


@dataclass(frozen=True)
class Mode:
    runtime: str  # onnxruntime | executorch | coreai | executorch-native
    streamed: bool
    prefetch: bool = False
    budget: int = 0  # bytes (streamed)
    budget_label: str = "-"  # '25%' or '184.3 MB'

    @property
    def name(self) -> str:
        if not self.streamed:
            return "monolithic"
        return "streamed + prefetch" if self.prefetch else "streamed"


@dataclass
class ModeResult:
    mode: Mode
    steps_s: list[float]  # latency of each denoiser call
    peak_rss: int  # VmHWM of the child: whole run
    peak_anon: int  # highest RssAnon sampled by the parent
    peak_file: int
    baseline_rss: int  # after imports, before any model was loaded
    load_s: float  # monolithic: the one load; streamed: loading per steady step
    hidden_s: float  # streamed: load time hidden behind compute per steady step
    loads_per_step: float
    max_abs_err: float  # against the eager output in the test vectors
    resident_max: int = 0
    parts_per_step: int = 0
    timeline: list[tuple[float, int, int]] = field(default_factory=list)  # (s since load start, anon, file)

    @property
    def step_s(self) -> float:
        """Median latency of the steady steps (the first call loads everything; it is left out)."""
        steady = self.steps_s[1:] or self.steps_s
        return statistics.median(steady)


def child_main(spec_path: str) -> None:
    """Run one mode and write its figures as JSON next to the spec (child process)."""
    spec = json.loads(Path(spec_path).read_text())
    mode, folder, steps, variant = Mode(**spec["mode"]), Path(spec["folder"]), spec["steps"], spec["variant"]
    data = np.load(folder / "test_vectors" / f"{variant}.npz")
    inputs = {k.split(".", 2)[2]: data[k] for k in data.files if k.startswith("seeded.input.")}
    expected = data["seeded.output.velocity"]
    if mode.runtime == "executorch":
        set_executorch_threads(spec["threads"])
    events = {"imported": time.time(), "baseline_rss": proc_status()["VmRSS"]}
    call, streamer, load_s = _prepare(mode, folder, variant, spec["threads"])
    events["loaded"] = time.time()
    latencies, out = [], None
    for _ in range(steps):
        t = time.perf_counter()
        out = call(inputs)
        latencies.append(time.perf_counter() - t)
    result = {"events": events, "steps_s": latencies, "peak_rss": proc_status()["VmHWM"], "load_s": load_s,
              "max_abs_err": float(np.max(np.abs(out - expected)))}
    if streamer is not None:
        steady = streamer.stats[1:] or streamer.stats
        result.update(load_s=statistics.mean(s.load_s for s in steady),
                      hidden_s=statistics.mean(s.hidden_s for s in steady),
                      loads_per_step=statistics.mean(s.parts_loaded for s in steady),
                      resident_max=max(s.resident_max for s in streamer.stats),
                      parts_per_step=streamer.stats[-1].parts_run)
    Path(spec["result"]).write_text(json.dumps(result))


def _prepare(mode: Mode, folder: Path, variant: str, threads: int):
    """(call(inputs) -> velocity, streamer or None, monolithic load seconds)."""
    if mode.streamed:
        streamer = BlockStreamer(open_split(folder, mode.runtime, verify=False), mode.budget, mode.prefetch, threads)
        return (lambda inputs: streamer(variant, inputs)), streamer, 0.0

    t = time.perf_counter()
    # coreai sets its own threads
    manifest = read_manifest(folder)
    runner = part_runner(folder, RUNTIME_FORMATS[mode.runtime], variant, threads, manifest)
    load_s = time.perf_counter() - t
    names = [i.name for i in manifest.parts[variant].inputs]
    return (lambda inputs: runner.run([inputs[n] for n in names])[0]), None, load_s


def native_command(binary: Path, folder: Path, variant: str, mode: Mode, steps: int, threads: int,
                   result: Path) -> list[str]:
    """`tomobile-native stream` for `mode`, without the check against the monolithic program (it
    would load that program inside the measured process)."""
    cmd = [str(binary), "stream", str(folder), "--variant", variant, "--steps", str(steps), "--threads", str(threads),
           "--json", str(result), "--no-check", "-q"]
    if not mode.streamed:
        return [*cmd, "--monolithic"]
    return [*cmd, "--memory-budget", str(mode.budget)] + ([] if mode.prefetch else ["--no-prefetch"])


def native_result(out: dict, started: float) -> dict:
    """The native engine's JSON in the Python child's shape (figures of the steady steps)."""
    steps = out["steps"]
    steady = steps[1:] or steps
    first = next(r for r in out["check"]["rows"] if "eager" in r["against"])
    result = {"events": {"imported": started, "baseline_rss": out["startup_rss_bytes"]},
              "steps_s": [s["latency_s"] for s in steps], "peak_rss": out["peak_rss_bytes"],
              "load_s": steps[0]["load_s"], "max_abs_err": first["max_abs_error"]}
    if out["mode"] == "streamed":
        result.update(load_s=statistics.mean(s["load_s"] for s in steady),
                      hidden_s=statistics.mean(s["hidden_s"] for s in steady),
                      loads_per_step=statistics.mean(s["parts_loaded"] for s in steady),
                      resident_max=max(s["resident_max_bytes"] for s in steps),
                      parts_per_step=steps[-1]["parts_run"])
    return result


def run_mode(folder: Path, variant: str, mode: Mode, steps: int, threads: int,
             native: Path | None = None) -> ModeResult:
    """Run `mode` on denoiser `variant` in a child process, sampling its memory from here;
    `native`: the tomobile-native binary that runs the executorch-native modes."""
    with tempfile.TemporaryDirectory(prefix="tomobile-stream-bench.") as tmp:
        spec, result = Path(tmp) / "spec.json", Path(tmp) / "result.json"
        spec.write_text(json.dumps({"mode": asdict(mode), "folder": str(folder), "variant": variant, "steps": steps,
                                    "threads": threads, "result": str(result)}))
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        cmd = [sys.executable, "-m", __name__, str(spec)]
        if mode.runtime == NATIVE:
            cmd = native_command(native, folder, variant, mode, steps, threads, result)
        started = time.time()
        child = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        samples = []
        while child.poll() is None:
            s = proc_status(child.pid)
            if s["VmRSS"]:  # 0 once the child has exited
                samples.append((time.time(), s["RssAnon"], s["RssFile"]))
            time.sleep(SAMPLE_S)
        stderr = child.stderr.read()
        if child.returncode != 0 or not result.exists():
            last = [line for line in stderr.splitlines() if line.strip()][-1:] or ["no output"]
            raise RuntimeError(f"{mode.runtime} {mode.name} ({mode.budget_label}) failed: {last[0]}")
        out = json.loads(result.read_text())
        if mode.runtime == NATIVE:
            out = native_result(out, started)
    start = out["events"]["imported"]
    timeline = [(t - start, a, f) for t, a, f in samples if t >= start]
    return ModeResult(mode, out["steps_s"], out["peak_rss"], max((a for _, a, _ in samples), default=0),
                      max((f for _, _, f in samples), default=0), out["events"]["baseline_rss"], out["load_s"],
                      out.get("hidden_s", 0.0), out.get("loads_per_step", 0.0), out["max_abs_err"],
                      out.get("resident_max", 0), out.get("parts_per_step", 0), timeline)


def plan_modes(runtimes: list[str], budgets: dict[str, list[tuple[int, str]]]) -> list[Mode]:
    """Per runtime: monolithic, then streamed without and with prefetch at every budget."""
    modes = []
    for runtime in runtimes:
        modes.append(Mode(runtime, streamed=False))
        for nbytes, label in budgets[runtime]:
            modes.append(Mode(runtime, True, False, nbytes, label))
            modes.append(Mode(runtime, True, True, nbytes, label))
    return modes


def run_bench(folder: Path, variant: str, modes: list[Mode], steps: int, threads: int, rounds: int = 1,
              progress: bool = True, native: Path | None = None) -> list[ModeResult]:
    """Every mode `rounds` times, the order rotated per round; a mode's figures merge its rounds
    (latencies pooled, peaks the highest, the first round's timeline)."""
    by_mode: dict[Mode, list[ModeResult]] = {m: [] for m in modes}
    bar = tqdm(total=len(modes) * rounds, desc="stream bench", unit="run", disable=not progress)
    for r in range(rounds):
        shift = r * len(modes) // rounds
        for mode in modes[shift:] + modes[:shift]:
            bar.set_postfix_str(f"{mode.runtime} {mode.name} {mode.budget_label}")
            by_mode[mode].append(run_mode(folder, variant, mode, steps, threads, native))
            bar.update(1)
    bar.close()
    return [_merge(results) for results in by_mode.values()]


def _merge(results: list[ModeResult]) -> ModeResult:
    first = results[0]
    if len(results) == 1:
        return first
    steady = [s for r in results for s in (r.steps_s[1:] or r.steps_s)]
    return ModeResult(first.mode, [first.steps_s[0], *steady], max(r.peak_rss for r in results),
                      max(r.peak_anon for r in results), max(r.peak_file for r in results),
                      max(r.baseline_rss for r in results), statistics.mean(r.load_s for r in results),
                      statistics.mean(r.hidden_s for r in results), statistics.mean(r.loads_per_step for r in results),
                      max(r.max_abs_err for r in results), max(r.resident_max for r in results), first.parts_per_step,
                      first.timeline)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    child_main(sys.argv[1])
    exit_process(0)
