"""Core AI: `--format coreai` writes model.aimodel, validated numerically on coreai-core's Linux CPU
runtime like ONNX Runtime and ExecuTorch; ops Core AI has no lowering for are refused before
conversion; a local Hugging Face folder of every supported family converts and validates."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tomobile.cli.main import main
from tomobile.export.opcheck import UnsupportedOpError, check_graph
from tomobile.export.pipeline import stage_export
from tomobile.export.registry import ExportOptions
from tomobile.graphs.models.exportable import Exportable, ModelBundle, TensorSpec
from tomobile.runtime.artifacts import CoreAIRunner
from tomobile.runtime.validate import validate_dir

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
VISION = dict(image_size=32, patch_size=8, **TINY)


def _coreai_rows(out: Path) -> list:
    report = validate_dir(out, progress=False)
    rows = [c for c in report.checks if c.artifact.endswith(".aimodel")]
    assert rows and report.passed, [(c.artifact, c.output, c.status, c.note) for c in report.checks]
    return rows


def test_vit_tiny_exports_to_coreai_and_validates_numerically(tmp_path: Path, capsys):
    out = tmp_path / "vit"
    assert main(["-q", "export", "vit-tiny", "--merge", "tome:r=8", "--format", "coreai", "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert printed.err == ""  # -q: no converter progress bar, no runtime "Loading function" line
    row = next(line for line in printed.out.splitlines() if line.startswith("model.aimodel"))
    assert row.split()[-1] == "pass"  # a numeric row, not "needs macOS"
    manifest = json.loads((out / "manifest.json").read_text())
    entry = next(a for a in manifest["artifacts"] if a["format"] == "coreai")
    assert entry["path"] == "model.aimodel" and entry["minimum_os"] == "v27" and entry["precision"] == "fp32"
    assert (out / "model.aimodel" / "main.mlirb").is_file()
    # the asset's own names are the model's, not the converter's (addmm_24 ...)
    with CoreAIRunner(out / "model.aimodel") as runner:
        assert runner.input_names == ["pixel_values"] and runner.output_names == ["logits"]
        vectors = np.load(out / "test_vectors" / "model.npz")
        (logits,) = runner.run([vectors["seeded.input.pixel_values"]])
    assert np.abs(logits - vectors["seeded.output.logits"]).max() < 1e-5
    rows = _coreai_rows(out)
    assert all(r.status == "pass" and r.max_abs_error < 1e-4 for r in rows)


def test_validation_fails_a_coreai_asset_that_gives_wrong_numbers(tmp_path: Path):
    out = tmp_path / "vit"
    assert main(["-q", "export", "vit-tiny", "--format", "coreai", "--out", str(out), "--no-validate"]) == 0
    vectors = dict(np.load(out / "test_vectors" / "model.npz"))
    vectors["seeded.output.logits"] = vectors["seeded.output.logits"] + 1e-2
    np.savez(out / "test_vectors" / "model.npz", **vectors)
    manifest = json.loads((out / "manifest.json").read_text())
    from tomobile.runtime.manifest import sha256_path

    manifest["test_vectors"]["model"] = sha256_path(out / "test_vectors" / "model.npz")
    (out / "manifest.json").write_text(json.dumps(manifest))
    report = validate_dir(out, progress=False)
    assert not report.passed and [c.status for c in report.checks] == ["FAIL"]
    assert report.checks[0].max_abs_error == pytest.approx(1e-2, rel=1e-2)


def test_fp16_coreai_passes_by_psnr(tmp_path: Path):
    out = tmp_path / "vit16"
    assert main(["-q", "export", "vit-tiny", "--merge", "tome:r=8", "--format", "coreai", "--precision", "fp16",
                 "--out", str(out)]) == 0
    entry = json.loads((out / "manifest.json").read_text())["artifacts"][0]
    assert entry["precision"] == "fp16" and entry["float_io"] == "float16"
    rows = _coreai_rows(out)
    assert all(r.psnr_db >= 35.0 and r.max_abs_error > 0 for r in rows)  # fp16 really ran: not bit-equal


class ReferenceStyleMerge(Exportable):
    """The original ToMe style: argsort + scatter_reduce(mean)."""

    input_specs = (TensorSpec("x", (1, 16, 4)),)
    output_names = ("y",)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        a, b = x[:, ::2], x[:, 1::2]  # (1, 8, 4) each
        order = a.norm(dim=-1).argsort(dim=-1, descending=True)[..., None]  # (1, 8, 1)
        dst = b.scatter_reduce(1, order[:, :4].expand(1, 4, 4), a[:, :4], reduce="mean")  # (1, 8, 4)
        return (dst,)


def test_reference_merge_is_refused_for_coreai_naming_op_and_node(tmp_path: Path):
    m = ReferenceStyleMerge()
    problems = check_graph(torch.export.export(m, m.example_inputs(), strict=False), "coreai")
    assert {p.op for p in problems} == {"aten.argsort.default", "aten.scatter_reduce.two"}
    assert all(p.node != "-" for p in problems)
    out = tmp_path / "out"
    bundle = ModelBundle("reference", {"model": ReferenceStyleMerge()})
    with pytest.raises(UnsupportedOpError, match=r"coreai will not run part 'model': aten\.argsort\.default \(node"):
        stage_export(bundle, ["coreai"], out, ExportOptions(), progress=False)
    assert list(tmp_path.iterdir()) == []


def _seeded(build):
    torch.manual_seed(0)
    return build().eval()


def _vit(folder: Path) -> None:
    from transformers import ViTConfig, ViTForImageClassification

    _seeded(lambda: ViTForImageClassification(ViTConfig(num_labels=3, **VISION))).save_pretrained(folder)


def _deit(folder: Path) -> None:
    from transformers import DeiTConfig, DeiTForImageClassificationWithTeacher

    _seeded(lambda: DeiTForImageClassificationWithTeacher(DeiTConfig(num_labels=3, **VISION))).save_pretrained(folder)


def _clip(folder: Path) -> None:
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    _seeded(lambda: CLIPVisionModelWithProjection(CLIPVisionConfig(projection_dim=24, **VISION))).save_pretrained(folder)


def _bert(folder: Path) -> None:
    from transformers import BertConfig, BertModel

    _seeded(lambda: BertModel(BertConfig(vocab_size=1200, **TINY))).save_pretrained(folder)


def _siglip(folder: Path) -> None:
    from transformers import SiglipVisionConfig, SiglipVisionModel

    _seeded(lambda: SiglipVisionModel(SiglipVisionConfig(**VISION))).save_pretrained(folder)


def _dinov2(folder: Path) -> None:
    from transformers import Dinov2Config, Dinov2Model

    _seeded(lambda: Dinov2Model(Dinov2Config(**VISION))).save_pretrained(folder)


def _dinov2_registers(folder: Path) -> None:
    from transformers import Dinov2WithRegistersConfig, Dinov2WithRegistersModel

    _seeded(lambda: Dinov2WithRegistersModel(Dinov2WithRegistersConfig(num_register_tokens=2, **VISION))).save_pretrained(folder)


def _sentence(folder: Path) -> None:
    """A sentence-transformers folder (MiniLM's layout): a BERT, modules.json and mean pooling."""
    _bert(folder)
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))


@pytest.mark.parametrize(("family", "spec"), [
    (_vit, "tome:r=2"), (_deit, "tome:r=2"), (_clip, "tome:r=2"), (_bert, "tome:r=2"), (_siglip, "tome:r=2"),
    (_dinov2, "tome:r=2"), (_dinov2_registers, "tome:r=2"), (_dinov2_registers, "pitome:ratio=0.9"),
    (_sentence, "tome:r=2")],
    ids=["vit", "deit", "clip-vision", "bert", "siglip", "dinov2", "dinov2-registers", "dinov2-registers-pitome",
         "sentence-transformers"])
def test_local_hf_folder_of_every_family_exports_to_coreai_and_validates(tmp_path: Path, family, spec, capsys):
    folder = tmp_path / "hf"
    family(folder)
    capsys.readouterr()
    out = tmp_path / "out"
    assert main(["-q", "export", str(folder), "--merge", spec, "--format", "coreai", "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    names = [o["name"] for o in manifest["parts"]["model"]["outputs"]]
    assert family is not _sentence or names == ["last_hidden_state", "sentence_embedding"]
    with CoreAIRunner(out / "model.aimodel") as runner:
        assert runner.output_names == names
    rows = _coreai_rows(out)
    assert {r.output for r in rows} == set(names) and all(r.status == "pass" for r in rows)


@pytest.mark.slow
def test_bench_has_coreai_rows_with_oracle_and_overhead(tmp_path: Path):
    out = tmp_path / "b.json"
    assert main(["-q", "bench", "vit-tiny", "--merge", "tome:r=8", "--runtime", "onnxruntime,coreai", "--runs", "3",
                 "--threads", "1,2", "--no-eager", "--work", str(tmp_path / "w"), "--json", str(out)]) == 0
    core = json.loads(out.read_text())["runtimes"]["coreai"]
    assert set(core) == {"1"}  # Core AI sets its own threads: timed once
    rows = core["1"]
    assert set(rows) == {"r=0", "r=8", "drop r=8"}
    assert rows["r=8"]["speedup"] > 0 and rows["r=8"]["oracle_speedup"] > 0
    assert rows["r=8"]["merge_overhead"] is not None and rows["drop r=8"]["merge_overhead"] is None


@pytest.mark.parametrize("ops", ["arithmetic", "indexed"])
def test_coreai_merge_picks_eager_slots_on_exact_ties(tmp_path: Path, ops: str):
    """Both merge spellings convert; on inputs full of exact ties the graph picks the slots eager
    picks (lowest index wins). Copies of different prototypes score 1 up to rounding that differs
    between eager and Core AI (1.0 vs 0.99999994); snap_duplicates makes them exactly 1 on both."""
    from tomobile.export.coreai_format import convert
    from tomobile.export.registry import PartInfo
    from tomobile.graphs.methods.merge import ARITHMETIC, assignment, merge_sum, one_hot_assignment
    from tomobile.graphs.methods.merge_indexed import INDEXED
    from tomobile.graphs.methods.plan import Protected

    t, r = 41, 9

    class Slots(torch.nn.Module):
        def forward(self, metric: torch.Tensor) -> torch.Tensor:
            eye = metric[0, :, :1] * 0.0 + torch.eye(t)  # (T, T)
            m = spelling.match(metric, r, Protected(class_token=True))
            return merge_sum(m, eye.reshape(1, t, t))  # (1, T - r, T)

    spelling = {"arithmetic": ARITHMETIC, "indexed": INDEXED}[ops].for_export()
    with torch.no_grad():
        program = torch.export.export(Slots(), (torch.randn(1, t, 8),), strict=False)
    convert(program, PartInfo("slots", ("metric",), ("m",)), tmp_path / "slots.aimodel")
    gen = torch.Generator().manual_seed(5)
    with CoreAIRunner(tmp_path / "slots.aimodel") as runner:
        for trial in range(20):
            protos = torch.randn(3, 8, generator=gen)
            metric = protos[torch.randint(0, 3, (1, t), generator=gen)]  # every score ties with many others
            want = one_hot_assignment(assignment(metric, r, Protected(class_token=True)), t - r, torch.float32)
            (got,) = runner.run([metric.numpy()])
            assert np.array_equal(got, want.numpy()), f"trial {trial}: Core AI picked other slots than eager"
