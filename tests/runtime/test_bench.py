"""tomobile bench: FLOP ratio, spec parsing, round-robin order, reference merge, report shapes.
Nothing here asserts a speed: timings only ever appear in benchmark output."""

from __future__ import annotations

import json

import pytest
import torch

from tomobile.cli.checks import parse_threads
from tomobile.cli.cmd_bench import label, parse_runtimes, parse_specs
from tomobile.graphs.spec.config import MergeConfig
from tomobile.runtime.bench import round_robin
from tomobile.runtime.bench_report import BenchReport, BenchRow, format_table, save_plot
from tomobile.runtime.flops import constant_r_tokens, flop_ratio, layer_macs
from tomobile.runtime.reference_merge import reference_merge


@pytest.mark.parametrize("r,expected", [(8, 1.34), (13, 1.70), (16, 2.02)])
def test_flop_ratio_matches_facts_for_vit_b16(r, expected):
    assert flop_ratio(constant_r_tokens(197, 12, r), 768, 3072) == pytest.approx(expected, abs=0.005)


def test_flop_ratio_is_one_without_merging_and_mlp_width_counts():
    assert flop_ratio([65] * 5, 64, 128) == 1.0
    assert layer_macs(10, 5, 8, 32) - layer_macs(10, 5, 8, 16) == 2 * 8 * 16 * 5


def test_parse_specs_puts_the_unmerged_baseline_first_and_adds_drop_twins():
    configs = parse_specs("tome:r=8; tome:r=16;tome:r=8;none")
    assert [label(c) for c in configs] == ["r=0", "r=8", "r=16", "drop r=8", "drop r=16"]
    assert configs[3].params.params == configs[1].params and configs[3].drops
    assert [label(c) for c in parse_specs("tome:r=8;drop:r=8", oracle=False)] == ["r=0", "r=8", "drop r=8"]
    assert [label(c) for c in parse_specs("tome:r=8", oracle=False)] == ["r=0", "r=8"]
    with pytest.raises(ValueError, match="names no merging spec"):
        parse_specs("none")
    assert label(MergeConfig.parse("tome:r=4,schedule=decreasing")) == "tome:r=4,schedule=decreasing"
    assert label(MergeConfig.parse("drop:r=4,8")) == "drop:r=4,8"


def test_parse_threads_takes_a_list_of_positive_counts():
    assert parse_threads("1,2") == [1, 2]
    for bad in ("0", "a", "", "1,-2", "1,2,1", "1,,2", "\uff12", "1_0", "99999"):
        with pytest.raises(ValueError, match="--threads"):
            parse_threads(bad)


def test_parse_runtimes_rejects_unknown_names_and_repeats():
    assert parse_runtimes("onnxruntime, executorch") == ["onnxruntime", "executorch"]
    assert parse_runtimes("executorch-fp16,executorch-int8") == ["executorch-fp16", "executorch-int8"]
    with pytest.raises(ValueError, match="runtimes: onnxruntime"):
        parse_runtimes("tflite")
    with pytest.raises(ValueError, match="lists onnxruntime twice"):  # the list rule (docs/input_checks.md)
        parse_runtimes("onnxruntime, executorch,onnxruntime")


def test_round_robin_interleaves_and_rotates_the_start():
    calls: list[str] = []
    fns = {n: (lambda n=n: calls.append(n)) for n in "abc"}
    times = round_robin(fns, runs=3, warmup=1, progress=False)
    assert calls[:3] == ["a", "b", "c"]  # warm-ups
    assert calls[3:] == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3, "c": 3}


def _report() -> BenchReport:
    report = BenchReport("m", [1, 2], 5)
    for n in (1, 2):
        report.rows += [BenchRow("onnxruntime", "r=0", 0, 10.0, 9.0, 11.0, 1.0, 1.0, 1.0, None, threads=n, method="none"),
                        BenchRow("onnxruntime", "r=8", 8, 8.0, 7.5, 9.0, 1.25, 1.34, 0.93, 0.02, threads=n,
                                 oracle_speedup=1.3, merge_overhead=0.04, overhead_q1=0.03, overhead_q3=0.05),
                        BenchRow("onnxruntime", "drop r=8", 8, 7.7, 7.2, 9.0, 1.3, 1.34, 0.97, threads=n, method="drop")]
    report.rows.append(BenchRow("executorch", "r=8", 8, 9.0, 8.0, 9.5, 1.2, 1.34, 0.9, None, 1,
                                ["aten::select_copy.int_out"], threads=2))
    return report


def test_report_json_has_the_fields_per_runtime_threads_and_spec(tmp_path):
    data = json.loads(json.dumps(_report().to_json()))
    row = data["runtimes"]["onnxruntime"]["2"]["r=8"]
    assert {"median_ms", "speedup", "flop_ratio", "efficiency", "oracle_speedup", "merge_overhead"} <= set(row)
    assert row["merge_overhead"] == 0.04 and data["threads"] == [1, 2]
    assert data["runtimes"]["executorch"]["2"]["r=8"]["partitions"] == 1
    table = format_table(_report())
    assert "select_copy.int_out" in table and "2.0%" in table and "+4.0%" in table and "+3.0%..+5.0%" in table
    save_plot(_report(), tmp_path / "plot.png")
    assert (tmp_path / "plot.png").stat().st_size > 1000


def test_overhead_is_the_ratio_of_tome_to_its_drop_twin():
    from pathlib import Path

    from tomobile.runtime.bench import RUNTIMES, Variant, _rows

    variants = [Variant("r=0", 0, Path("."), 1.0, "none"), Variant("r=8", 8, Path("."), 1.34, "tome", "drop r=8"),
                Variant("drop r=8", 8, Path("."), 1.34, "drop")]
    times = {"r=0": [1.0, 1.2, 1.1], "r=8": [0.84, 0.9, 0.8], "drop r=8": [0.8, 0.75, 0.8]}
    rows = _rows(RUNTIMES["onnxruntime"], variants, times, threads=2)
    assert rows[1].merge_overhead == pytest.approx(0.84 / 0.8 - 1)
    assert rows[1].oracle_speedup == pytest.approx(1.1 / 0.8)
    assert rows[1].overhead_q1 == pytest.approx(0.025) and rows[1].overhead_q3 == pytest.approx(0.125)
    assert rows[0].merge_overhead is None and rows[2].merge_overhead is None


def test_reference_merge_gives_the_static_graphs_output_on_a_patched_vit():
    from tomobile.graphs.models.zoo import vit_tiny

    wrapper = vit_tiny(MergeConfig.parse("tome:r=8")).parts["model"]
    (x,) = wrapper.example_inputs(seed=3)
    with torch.no_grad():
        ours = wrapper(x)[0]
        with reference_merge(wrapper):
            ref = wrapper(x)[0]
        again = wrapper(x)[0]
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
    assert torch.equal(ours, again)  # the static functions are back after the block


@pytest.mark.slow
def test_bench_cli_on_vit_tiny_writes_json(tmp_path):
    from tomobile.cli.main import main

    out = tmp_path / "b.json"
    rc = main(["-q", "bench", "vit-tiny", "--merge", "tome:r=8", "--runs", "2", "--eager-runs", "1",
               "--work", str(tmp_path / "w"), "--json", str(out), "--plot", str(tmp_path / "b.png")])
    assert rc == 0
    data = json.loads(out.read_text())
    assert set(data["runtimes"]) == {"onnxruntime", "executorch"}
    ort, et = data["runtimes"]["onnxruntime"], data["runtimes"]["executorch"]
    assert set(ort) == {"1", "2"} and set(ort["1"]) == {"r=0", "r=8", "drop r=8"}
    assert et["2"]["r=8"]["partitions"] == et["2"]["drop r=8"]["partitions"] == 1
    assert 0.0 < ort["1"]["r=8"]["merge_share"] < 1.0
    assert ort["2"]["r=8"]["merge_overhead"] is not None and ort["2"]["drop r=8"]["merge_overhead"] is None


def test_variants_that_do_not_fit_together_are_loaded_timed_and_released_in_turn():
    from tomobile.runtime.bench import sequential_timings

    events = []

    def loader(name):
        def load():
            assert not [e for e in events if e[0] == "loaded" and ("released", e[1]) not in events], \
                "a variant loaded while another was still held"
            events.append(("loaded", name))

            class Call:
                def __call__(self):
                    events.append(("call", name))

                def __del__(self):
                    events.append(("released", name))
            return Call()
        return load

    times = sequential_timings({n: loader(n) for n in "abc"}, runs=3, warmup=1, progress=False)
    assert {k: len(v) for k, v in times.wall.items()} == {k: len(v) for k, v in times.cpu.items()} == \
        {"a": 3, "b": 3, "c": 3}
    assert [e for e in events if e[0] != "call"] == [("loaded", "a"), ("released", "a"), ("loaded", "b"),
                                                     ("released", "b"), ("loaded", "c"), ("released", "c")]
    assert events.count(("call", "b")) == 4  # 1 warm-up + 3 timed


def test_fit_together_compares_the_artifacts_bytes_with_the_memory_available(tmp_path, monkeypatch):
    from tomobile.runtime import bench
    from tomobile.runtime.bench import RUNTIMES, Variant, fit_together

    monkeypatch.setattr(bench, "artifact_bytes", lambda v, rt: 1000)  # graph + weights of each variant
    variants = [Variant(n, 0, tmp_path / n, 1.0) for n in ("a", "b")]
    rt = RUNTIMES["onnxruntime"]
    assert fit_together(variants, rt, 10_000) and not fit_together(variants, rt, 2_000)
    assert fit_together(variants, rt, 0)  # unknown memory: as before


def test_bench_times_a_video_transformers_tdtm_part_against_its_drop_twin(tmp_path):
    """`bench wan-tiny --merge tdtm`: the unmerged transformer, the TDTM one and its drop twin, each
    variant folder holding only the part it times; the FLOP ratio is the unmerged FLOPs over the twin's."""
    from tomobile.cli.main import main

    pytest.importorskip("diffusers", reason="diffusers is in the sd extra that `make test` installs")
    out, work = tmp_path / "b.json", tmp_path / "w"
    rc = main(["-q", "bench", "wan-tiny", "--merge", "tdtm", "--runtime", "onnxruntime", "--threads", "1",
               "--runs", "1", "--work", str(work), "--json", str(out)])
    assert rc == 0
    rows = json.loads(out.read_text())["runtimes"]["onnxruntime"]["1"]
    assert set(rows) == {"r=0", "tdtm", "drop:tdtm"}
    assert rows["tdtm"]["merge_overhead"] is not None and rows["drop:tdtm"]["merge_overhead"] is None
    assert rows["tdtm"]["flop_ratio"] == rows["drop:tdtm"]["flop_ratio"] > 1.5  # 5 latent frames -> 3 in attention
    assert sorted(p.name for p in work.glob("*/*.onnx")) == ["transformer.onnx", "transformer_tdtm.onnx",
                                                             "transformer_tdtm.onnx"]
    drop = json.loads((work / "drop_tdtm" / "manifest.json").read_text())
    assert drop["merge"]["method"] == "drop" and drop["variants"] == {"transformer_tdtm": {"tdtm": True, "drop": True}}
    from tomobile.runtime.bench import RUNTIMES, Variant, artifact_bytes

    loaded = artifact_bytes(Variant("tdtm", 0, work / "tdtm", 1.0, part="transformer_tdtm"), RUNTIMES["onnxruntime"])
    assert loaded == sum(p.stat().st_size for p in (work / "tdtm").glob("transformer_tdtm.onnx*"))


def test_unet_variants_find_their_files_under_unet_and_count_flops_on_fake_tensors():
    """A diffusers UNet's export keeps diffusers' layout (unet/model.onnx, fp16/unet/model.pte); its
    FLOP ratio is the unmerged UNet's FLOPs over the drop twin's, counted by torch's flop counter."""
    from pathlib import Path

    from tomobile.cli.cmd_bench import _plan_figures, _unet_flop_ratios
    from tomobile.graphs.models.sd_unet import sd_unet_tiny
    from tomobile.runtime.bench import RUNTIMES, Variant

    pytest.importorskip("diffusers", reason="diffusers is in the sd extra that `make test` installs")
    v = Variant("tomesd:ratio=0.5", 0, Path("w/x"), 1.0, "tomesd", part="unet/model")
    assert v.artifact(RUNTIMES["onnxruntime"]) == Path("w/x/unet/model.onnx")
    assert v.artifact(RUNTIMES["executorch-fp16"]) == Path("w/x/fp16/unet/model.pte")
    assert Variant("r=0", 0, Path("w"), 1.0).artifact(RUNTIMES["onnxruntime-int8"]) == Path("w/model.int8.onnx")

    specs = ["none", "tomesd:ratio=0.5", "drop:tomesd:ratio=0.5"]
    flops = [_plan_figures(sd_unet_tiny(MergeConfig.parse(s)).parts["unet/model"])[1] for s in specs]
    assert flops[2] < flops[1] < flops[0]  # the merge saves attention work; its one-hot matmuls cost some back
    variants = [Variant("r=0", 0, Path("a"), flops[0], "none", part="unet/model"),
                Variant("m", 0, Path("b"), flops[1], "tomesd", "d", part="unet/model"),
                Variant("d", 0, Path("c"), flops[2], "drop", part="unet/model")]
    _unet_flop_ratios(variants)
    assert [v.flop_ratio for v in variants] == [1.0, flops[0] / flops[2], flops[0] / flops[2]]
