"""`tomobile export --split blocks` and `generate --stream`: the manifest's part list, the chain
rows of validation, and one-line errors for bad input (nothing written)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from tomobile.cli.main import main
from tomobile.runtime.manifest import sha256_path


def test_manifest_lists_the_parts_in_order_with_files_sizes_and_sha256(micro_split_export: Path):
    manifest = json.loads((micro_split_export / "manifest.json").read_text())
    split = manifest["split"]
    assert split["sequences"]["denoiser_tome"] == ["dit_embed", "dit_spatial00_tome", "dit_temporal00", "dit_final"]
    assert split["sequences"]["denoiser_tdtm_tome"] == ["dit_embed", "dit_spatial00_tdtm_tome", "dit_temporal00_tdtm",
                                                        "dit_final"]
    assert [p["name"] for p in split["parts"]] == ["dit_embed", "dit_spatial00_tome", "dit_temporal00", "dit_final",
                                                   "dit_spatial00_tdtm_tome", "dit_temporal00_tdtm"]
    embed = split["parts"][0]
    assert [i["name"] for i in embed["inputs"]] == ["x", "t", "states", "mask"]
    assert [o["name"] for o in embed["outputs"]] == ["h00", "caption", "caption_bias", "t0", "t_emb"]
    for part in split["parts"]:
        assert set(part["files"]) == {"onnx", "executorch"}
        for rec in part["files"].values():
            for f in (rec, rec["weights"]):  # the graph and its weights file beside it
                path = micro_split_export / f["path"]
                assert path.stat().st_size == f["bytes"] and sha256_path(path) == f["sha256"]
            assert rec["total_bytes"] == rec["bytes"] + rec["weights"]["bytes"]
    assert split["parts"][1]["files"]["executorch"]["weights"]["path"] == "dit_spatial00_tome.ptd"
    assert split["parts"][1]["files"]["onnx"]["weights"]["path"] == "dit_spatial00_tome.onnx.data"


def test_validation_checks_every_part_and_each_chain_against_eager(micro_split_export: Path):
    checks = json.loads((micro_split_export / "manifest.json").read_text())["validation"]["checks"]
    ran = {c["artifact"] for c in checks}
    assert {"dit_embed.onnx", "dit_spatial00_tome.pte:dit_spatial00_tdtm_tome", "dit_final.pte"} <= ran  # a block's parts: methods of one .pte
    chains = [c for c in checks if c["artifact"].startswith("chain ")]
    assert len(chains) == 2 * 3  # two variants on two runtimes and as eager parts, seeded case
    assert sum(c["artifact"].endswith("(eager parts)") for c in chains) == 2
    assert all(c["status"] == "pass" and c["max_abs_error"] <= 1e-5 for c in chains)


def _one_line_error(capsys, argv: list[str]) -> str:
    assert main(["-q", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tomobile: error:") and "\n" not in err
    return err


@pytest.fixture
def broken_copy(micro_split_export: Path, tmp_path: Path):
    def make(change) -> Path:
        copy = tmp_path / "copy"
        shutil.copytree(micro_split_export, copy)
        change(copy)
        return copy

    return make


def _generate(folder: Path, tmp_path: Path, *extra: str) -> list[str]:
    """--tome: video-dit-micro's split has only the spatial-ToMe variants, and `generate --stream`
    checks the parts of the variants it runs (issue 18, item 15)."""
    return ["generate", "a red circle moving left", "--out", str(tmp_path / "clip.gif"), "--runtime", "onnxruntime",
            "--artifacts", str(folder), "--tome", *extra]


def test_stream_refuses_a_budget_below_the_largest_part(micro_split_export, tmp_path, capsys):
    from tomobile.runtime.streaming import mb, open_split

    split = open_split(micro_split_export, "onnxruntime")
    err = _one_line_error(capsys, _generate(micro_split_export, tmp_path, "--stream", "--memory-budget", "1KB"))
    # the largest part of the variants the run uses (only those are checked), named with its size
    found = re.search(r"memory budget 1\.0 KB is below the largest part, (\w+) \(([^)]+)\); give at least", err)
    assert found, err
    assert found[2] == mb(split.parts[found[1]].size) and split.parts[found[1]].size > 1024
    assert not (tmp_path / "clip.gif").exists()


def test_stream_refuses_a_missing_part(broken_copy, tmp_path, capsys):
    copy = broken_copy(lambda folder: (folder / "dit_final.ptd").unlink())
    argv = [*_generate(copy, tmp_path, "--stream", "--memory-budget", "64MB")]
    argv[argv.index("onnxruntime")] = "executorch"
    err = _one_line_error(capsys, argv)
    assert "part dit_final:" in err and "dit_final.ptd is missing" in err
    assert not (tmp_path / "clip.gif").exists()


def test_stream_refuses_an_altered_part(broken_copy, tmp_path, capsys):
    def flip(folder: Path) -> None:
        data = folder / "dit_temporal00.onnx.data"
        raw = bytearray(data.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        data.write_bytes(bytes(raw))

    err = _one_line_error(capsys, _generate(broken_copy(flip), tmp_path, "--stream", "--memory-budget", "64MB"))
    assert "dit_temporal00.onnx.data does not match its sha256" in err and "another export" in err
    assert not (tmp_path / "clip.gif").exists()


def test_stream_names_a_part_file_that_belongs_to_another_part(broken_copy, tmp_path, capsys):
    def swap(folder: Path) -> None:
        shutil.copy(folder / "dit_temporal00_tdtm.onnx", folder / "dit_temporal00.onnx")

    err = _one_line_error(capsys, _generate(broken_copy(swap), tmp_path, "--stream", "--memory-budget", "64MB"))
    assert "dit_temporal00.onnx holds dit_temporal00_tdtm.onnx" in err
    assert not (tmp_path / "clip.gif").exists()


def test_stream_refuses_parts_from_another_export(broken_copy, tmp_path, capsys):
    """A part whose files come from an export with other weights (here: same graph, weights of
    another seed written over it) does not match the manifest's sha256."""
    def other_export(folder: Path) -> None:
        data = folder / "dit_spatial00_tome.onnx.data"
        other = np.random.default_rng(1).standard_normal(data.stat().st_size // 4).astype(np.float32)
        data.write_bytes(other.tobytes())

    err = _one_line_error(capsys, _generate(broken_copy(other_export), tmp_path, "--stream", "--memory-budget", "64MB"))
    assert "part dit_spatial00_tome:" in err and "(altered, or from another export)" in err
    assert not (tmp_path / "clip.gif").exists()


def test_a_part_of_another_shape_with_a_matching_sha256_is_a_fail_row(broken_copy, capsys):
    """Issue 18, item 3: a part file from elsewhere whose manifest sha256 was edited to match ended
    `validate` in an ONNX Runtime InvalidArgument traceback; its I/O is checked against the manifest."""
    def other_part(folder: Path) -> None:
        shutil.copy(folder / "dit_final.onnx", folder / "dit_temporal00.onnx")
        manifest = json.loads((folder / "manifest.json").read_text())
        digest = sha256_path(folder / "dit_temporal00.onnx")
        next(a for a in manifest["artifacts"] if a["path"] == "dit_temporal00.onnx")["sha256"] = digest
        next(p for p in manifest["split"]["parts"] if p["name"] == "dit_temporal00")["files"]["onnx"]["sha256"] = digest
        (folder / "manifest.json").write_text(json.dumps(manifest))

    assert main(["-q", "validate", str(broken_copy(other_part))]) == 1
    out = capsys.readouterr().out
    assert "chain denoiser_tome (onnx)" in out and "dit_temporal00.onnx has 5 inputs, the manifest lists 4" in out
    assert "validation FAILED" in out


def test_swapped_files_name_every_file_that_holds_those_bytes(broken_copy, tmp_path, capsys):
    """Issue 18, item 14: two files can hold the same bytes, and the error named only the last. A
    block's parts now share one weights file (issue 24), which is named once."""
    def swap(folder: Path) -> None:
        shutil.copy(folder / "dit_spatial00_tome.onnx.data", folder / "dit_embed.onnx.data")

    err = _one_line_error(capsys, _generate(broken_copy(swap), tmp_path, "--stream", "--memory-budget", "64MB"))
    assert "dit_embed.onnx.data holds dit_spatial00_tome.onnx.data (a different part)" in err, err  # once, not "X or X"


def test_a_damaged_part_of_an_unused_variant_does_not_stop_the_run(broken_copy, tmp_path, capsys):
    """Issue 18, item 15: as without --stream, only the variants the run uses are checked; the next
    check (micro has no text encoder) is what stops it, before any work."""
    def damage(folder: Path) -> None:
        (folder / "dit_temporal00_tdtm.onnx.data").write_bytes(b"damaged")

    err = _one_line_error(capsys, _generate(broken_copy(damage), tmp_path, "--stream", "--memory-budget", "64MB"))
    assert "text_encoder.onnx is missing" in err and "tdtm" not in err, err


def test_stream_refuses_an_export_without_split(vit_tiny_export, tmp_path, capsys):
    err = _one_line_error(capsys, _generate(vit_tiny_export, tmp_path, "--stream", "--memory-budget", "64MB"))
    assert "exported without --split blocks" in err
    assert not (tmp_path / "clip.gif").exists()


@pytest.mark.parametrize("extra,needle", [
    (["--stream"], "--stream needs --memory-budget"),
    (["--memory-budget", "64MB"], "only with --stream"),
    (["--stream", "--memory-budget", "lots"], "not a size"),
])
def test_stream_option_errors(micro_split_export, tmp_path, capsys, extra, needle):
    assert needle in _one_line_error(capsys, _generate(micro_split_export, tmp_path, *extra))


def test_stream_needs_an_exported_runtime(micro_split_export, tmp_path, capsys):
    argv = ["generate", "x", "--out", str(tmp_path / "c.gif"), "--artifacts", str(micro_split_export),
            "--stream", "--memory-budget", "64MB"]
    assert "--runtime onnxruntime, executorch or coreai" in _one_line_error(capsys, argv)


@pytest.mark.parametrize("argv,needle", [
    (["export", "vit-tiny", "--split", "blocks"], "needs a video denoiser"),
    (["export", "video-dit-micro", "--split", "blocks", "--quantize", "int8"], "not supported with --split"),
])
def test_export_split_errors_write_nothing(tmp_path, monkeypatch, capsys, argv, needle):
    monkeypatch.chdir(tmp_path)
    assert needle in _one_line_error(capsys, argv)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["onnxruntime", "executorch"])
def test_generate_stream_gives_the_unstreamed_clip(tiny_split_export, tmp_path, capsys, runtime):
    """The issue's check: the same clip with and without --stream (32MB: every part resident; 2MB:
    parts streamed every step), LPL and TDTM on so the sampler switches variants."""
    import numpy as np

    def run(name: str, *extra: str) -> np.ndarray:
        out = tmp_path / f"{name}.npy"
        assert main(["-q", "generate", "a blue square moving up", "--out", str(out), "--runtime", runtime,
                     "--artifacts", str(tiny_split_export), "--steps", "8", "--lpl", "4", "--tdtm-steps", "2",
                     *extra]) == 0
        return np.load(out)

    plain = run("plain")
    resident = run("resident", "--stream", "--memory-budget", "32MB")
    streamed = run("streamed", "--stream", "--memory-budget", "2MB")
    text = capsys.readouterr().out
    assert "budget 2.0 MB: resident parts at most" in text and "peak RssFile MB" in text
    assert np.array_equal(resident, streamed)  # the same parts on the same inputs
    assert np.abs(resident - plain).max() <= 1e-5  # chained parts against the monolithic graph: fp32 rounding


def test_stream_bench_runs_every_mode_from_an_empty_work_folder(tmp_path, capsys):
    """`bench --stream` end to end as the README runs it, from an empty work folder (issue 18, item
    1: the split export is validated with its part list; it ended in KeyError 'parts'): monolithic,
    streamed and streamed + prefetch per budget, each in its own process, outputs checked against
    the test vectors."""
    import json

    from tomobile.cli.main import main

    work = tmp_path / "work"
    out = tmp_path / "bench.json"
    assert main(["-q", "bench", "video-dit-micro", "--stream", "--work", str(work), "--runtime",
                 "onnxruntime", "--budgets", "50%,100%", "--steps", "2", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["threads"] == 2 and report["steps"] == 2
    modes = [row["mode"] for row in report["rows"]]
    assert modes.count("monolithic") == 1 and modes.count("streamed") == 2 and modes.count("streamed + prefetch") == 2
    assert all(row["max_abs_err"] < 1e-4 and row["step_s"] > 0 and row["peak_rss"] > 0 for row in report["rows"])
    text = capsys.readouterr().out
    assert "peak RSS" in text and "(0 MB)" not in text and "50% (" in text and " KB)" in text  # item 13: micro's KB budgets
    assert json.loads((work / "manifest.json").read_text())["validation"]["passed"]


def test_coreml_split_parts_carry_the_manifest_input_names(tmp_path, capsys):
    """Issue 18, item 9: Core ML block parts took the forward's `h` where the manifest says `h00`,
    so 5 spec rows failed."""
    import coremltools as ct

    out = tmp_path / "micro-coreml"
    assert main(["-q", "export", "video-dit-micro", "--split", "blocks", "--format", "coreml", "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["validation"]["passed"]
    spec = ct.utils.load_spec(str(out / "dit_temporal00.mlpackage"))  # the block's parts: functions of one package
    functions = {f.name: [i.name for i in f.input] for f in spec.description.functions}
    assert functions == {"dit_temporal00": ["h01", "caption", "caption_bias", "t0"],
                         "dit_temporal00_tdtm": ["h01", "caption", "caption_bias", "t0"]}
