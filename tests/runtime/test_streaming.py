"""BlockStreamer: budget, resident set, prefetch, per-step figures (fake parts); then the exported
video-dit-micro parts on ONNX Runtime and ExecuTorch: chain = monolithic, streamed clip = unstreamed."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tomobile.runtime.streaming import BlockStreamer, PartFile, SplitModel, StreamError, parse_bytes, plan_pinned


class FakePart:
    """Adds `step` to its input; records that it is loaded, so the test can count resident bytes."""

    def __init__(self, spec: PartFile, live: dict, delay: float) -> None:
        time.sleep(delay)
        self.spec, self.live = spec, live
        live[spec.name] = spec.size

    def run(self, arrays):
        time.sleep(0.02)
        return [arrays[0] + float(self.spec.name[1:])]

    def close(self):
        del self.live[self.spec.name]


def fake_model(sizes: list[int]) -> SplitModel:
    names = [f"p{i}" for i in range(len(sizes))]
    parts = {n: PartFile(n, Path(n), None, s, ("h",), ("h",)) for n, s in zip(names, sizes, strict=True)}
    return SplitModel(Path("."), "fake", parts, {"v": names})


def make_streamer(sizes, budget, prefetch, delay=0.0):
    live: dict[str, int] = {}
    peak = [0]
    lock = threading.Lock()

    def loader(spec, background):
        part = FakePart(spec, live, delay)
        with lock:
            peak[0] = max(peak[0], sum(live.values()))
        return part

    return BlockStreamer(fake_model(sizes), budget, prefetch, loader=loader), live, peak


@pytest.mark.parametrize("prefetch", [False, True])
@pytest.mark.parametrize("budget", [40, 55, 70, 100, 1000])
def test_resident_parts_never_exceed_the_budget_and_results_do_not_change(prefetch, budget):
    sizes = [10, 40, 30, 40, 5]
    streamer, live, peak = make_streamer(sizes, budget, prefetch)
    for _ in range(3):
        out = streamer("v", {"h": np.zeros(2, np.float32)})
        assert np.array_equal(out, np.full(2, 0 + 1 + 2 + 3 + 4, np.float32))
    assert peak[0] <= budget and all(s.resident_max <= budget for s in streamer.stats)
    if budget >= sum(sizes):  # everything fits: loaded once, kept
        assert [s.parts_loaded for s in streamer.stats] == [5, 0, 0]
    else:
        assert all(s.parts_loaded > 0 for s in streamer.stats[1:])
    streamer.close()
    assert live == {}


def test_a_budget_below_the_largest_part_names_both_sizes():
    with pytest.raises(StreamError, match=r"budget 39 B is below the largest part, p1 \(40 B\)"):
        make_streamer([10, 40, 30], 39, True)


def test_plan_keeps_parts_resident_while_room_for_streaming_remains():
    sizes = {"a": 10, "b": 40, "c": 30, "d": 40, "e": 5}
    assert plan_pinned(sizes, 125, prefetch=True) == set(sizes)
    pinned = plan_pinned(sizes, 100, prefetch=True)
    streamed = sorted((sizes[n] for n in sizes if n not in pinned), reverse=True)
    assert sum(sizes[n] for n in pinned) + sum(streamed[:2]) <= 100 and pinned
    assert plan_pinned(sizes, 40, prefetch=False) == set()


class GilHoldingPart(FakePart):
    """Loads and computes in single C calls that keep the GIL (no bytecode runs, so no thread
    switch), as ExecuTorch's bindings do in load_method and execute."""

    def __init__(self, spec: PartFile, live: dict) -> None:
        self.spec, self.live = spec, live
        sum(range(3_000_000))
        live[spec.name] = spec.size

    def run(self, arrays):
        sum(range(1_500_000))
        return [arrays[0] + float(self.spec.name[1:])]


def test_a_load_beside_a_run_that_holds_the_gil_is_not_counted_as_hidden():
    live: dict[str, int] = {}
    streamer = BlockStreamer(fake_model([10] * 6), 20, True, loader=lambda spec, background: GilHoldingPart(spec, live))
    for _ in range(3):
        streamer("v", {"h": np.zeros(1, np.float32)})
    steady = streamer.stats[-1]
    assert steady.parts_loaded == 6 and steady.load_s > 0.05
    assert steady.hidden_s < 0.15 * steady.load_s  # the edges of each load: Python around the C call
    streamer.close()


def test_prefetch_hides_loading_behind_compute():
    """Loads of 15 ms beside runs of 20 ms: with prefetch the compute thread barely waits."""
    plain, _, _ = make_streamer([10] * 6, 20, prefetch=False, delay=0.015)
    ahead, _, _ = make_streamer([10] * 6, 20, prefetch=True, delay=0.015)
    for streamer in (plain, ahead):
        for _ in range(3):
            streamer("v", {"h": np.zeros(1, np.float32)})
    steady_plain, steady_ahead = plain.stats[-1], ahead.stats[-1]
    assert steady_plain.parts_loaded == 5  # without prefetch one part stays beside the streamed one
    assert steady_ahead.parts_loaded == 6  # with prefetch the budget holds the running and the next part
    assert steady_plain.hidden_s == 0.0
    assert steady_ahead.hidden_s > 0.5 * steady_ahead.load_s
    assert steady_ahead.peak.rss > 0  # VmHWM from /proc


def test_parse_bytes():
    assert parse_bytes("64MB") == 64_000_000 and parse_bytes("1.5GiB") == 3 * 2**29 and parse_bytes("4096") == 4096
    for bad in ("lots", "-1MB", "0", "12XB", "inf", "1e400", "infMB", "nan", "1e3MB", "1_000MB", "\uff12MB"):
        with pytest.raises(StreamError, match="not a size|out of range"):
            parse_bytes(bad)


# Exported parts (the session fixture exports video-dit-micro with --split blocks).

RUNTIMES = ["onnxruntime", "executorch"]


def _vectors(folder: Path, variant: str) -> dict[str, np.ndarray]:
    data = np.load(folder / "test_vectors" / f"{variant}.npz")
    return {k.split(".", 2)[2]: data[k] for k in data.files if k.startswith("seeded.input.")}


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_chained_parts_equal_the_monolithic_artifact(micro_split_export, runtime):
    from tomobile.runtime.runners import part_runner
    from tomobile.runtime.streaming import open_split

    split = open_split(micro_split_export, runtime)
    streamer = BlockStreamer(split, split.largest().size, prefetch=True)  # one part at a time
    for variant in ("denoiser_tome", "denoiser_tdtm_tome"):
        inputs = _vectors(micro_split_export, variant)
        mono = part_runner(micro_split_export, "onnx" if runtime == "onnxruntime" else "executorch", variant)
        expected = mono.run(list(inputs.values()))[0]
        got = streamer(variant, inputs)
        assert got.shape == expected.shape and np.abs(got - expected).max() <= 1e-5
    assert all(s.parts_loaded == s.parts_run for s in streamer.stats)  # nothing stayed resident
    streamer.close()


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_streamed_clip_equals_the_unstreamed_one(micro_split_export, runtime):
    """The sampler through streamed parts (tight budget, prefetch) against the monolithic artifacts."""
    from tomobile.runtime.runners import part_runner
    from tomobile.runtime.sampler import LeapConfig, SamplerConfig
    from tomobile.runtime.stream_video import streamed_runtime
    from tomobile.runtime.streaming import open_split
    from tomobile.runtime.video import RuntimeKind, VideoRuntime, generate

    kind = RuntimeKind(runtime)
    budget = 2 * open_split(micro_split_export, runtime).largest().size  # two parts at a time
    rt, streamer = streamed_runtime(kind, micro_split_export, budget)
    fmt = "onnx" if runtime == "onnxruntime" else "executorch"
    mono = {v: part_runner(micro_split_export, fmt, v) for v in ("denoiser_tome", "denoiser_tdtm_tome")}
    mono_rt = VideoRuntime(kind, rt.encode, {v: (lambda *a, r=r: r.run(list(a))[0]) for v, r in mono.items()}, rt.shape)
    states = _vectors(micro_split_export, "denoiser_tome")
    cfg = SamplerConfig(steps=4, leap=LeapConfig.parse("off"), tdtm_steps=2)
    kwargs = {"states": (states["states"], states["mask"]), "spatial": True}
    streamed = generate(rt, "", 0, cfg, **kwargs).frames
    unstreamed = generate(mono_rt, "", 0, cfg, **kwargs).frames
    assert np.abs(streamed - unstreamed).max() <= 1e-5  # chained parts against the monolithic graph
    assert [s.variant for s in streamer.stats] == ["denoiser_tdtm_tome"] * 2 + ["denoiser_tome"] * 2
    assert all(s.parts_loaded > 0 for s in streamer.stats)  # the budget holds two parts: every step streams


def test_onnx_runtime_parts_keep_their_weights_in_the_mapped_file(micro_split_export):
    from tomobile.runtime.streaming import load_part, open_split

    split = open_split(micro_split_export, "onnxruntime")
    part = split.parts["dit_spatial00_tome"]
    loaded = load_part(part, "onnxruntime")
    maps = Path("/proc/self/maps").read_text()
    assert str(part.weights.resolve()) in maps  # mapped, not copied into the heap
    loaded.close()
    assert str(part.weights.resolve()) not in Path("/proc/self/maps").read_text()


def test_latency_goal_judges_a_load_by_the_run_without_prefetch():
    """A prefetch thread's load time includes its waits for the GIL (ExecuTorch), so whether loading
    is faster than running is judged by the same budget's run without prefetch."""
    import dataclasses

    from tomobile.runtime.stream_bench import Mode, ModeResult
    from tomobile.runtime.stream_report import goals

    def result(streamed, prefetch, label, step_s, load_s, loads):
        mode = Mode("executorch", streamed, prefetch, 1, label)
        return ModeResult(mode, [9.0] + [step_s] * 3, 100, 0, 0, 0, load_s, 0.0, loads, 0.0, parts_per_step=10)

    mono = dataclasses.replace(result(False, False, "-", 1.0, 2.0, 0), peak_rss=1000)
    results = [mono, result(True, True, "100%", 1.44, 0.0, 0),
               result(True, False, "25%", 2.4, 0.44, 8), result(True, True, "25%", 2.01, 1.35, 9)]
    (rss, (goal, measured, met)) = goals(results)
    assert rss[2] and not met and "a load 0.055 s" in measured and "does not apply" not in measured
    slow_serial = results[:2] + [result(True, False, "25%", 3.0, 2.0, 8), results[3]]
    (_, (_, measured, _)) = goals(slow_serial)
    assert "a load 0.250 s" in measured and "does not apply" in measured


def test_resident_bytes_count_parts_kept_from_earlier_calls_and_print_in_small_units():
    """Issue 18, item 13: with every part resident, steps after the first showed 0.0 MB resident."""
    from tomobile.runtime.stream_video import format_steps

    sizes = [10, 40, 30, 40, 5]
    streamer, _, _ = make_streamer(sizes, 1000, prefetch=True)
    for _ in range(3):
        streamer("v", {"h": np.zeros(2, np.float32)})
    assert [s.resident_max for s in streamer.stats] == [sum(sizes)] * 3
    table = format_steps(streamer.stats, streamer.budget)
    rows = [line.split("  ") for line in table.splitlines()[2:5]]
    assert all([c.strip() for c in row if c.strip()][6] == "125 B" for row in rows), table
    streamer.close()
    big = make_streamer([1500, 2500], 10_000, prefetch=False)[0]
    big("v", {"h": np.zeros(2, np.float32)})
    assert "4.0 KB" in format_steps(big.stats, big.budget)
    big.close()
