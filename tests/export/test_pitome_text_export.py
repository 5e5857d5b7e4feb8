"""PiToMe (and ToMe) on a BERT-style encoder (a tiny local folder, random weights) exported to ONNX and
ExecuTorch: validated against eager (<= 1e-4 fp32), ExecuTorch in one XNNPACK partition with no
operator on portable kernels, and both runtimes checked on padded inputs as well (the export's own
validation feeds an all-real mask)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tomobile.export.pipeline import export_model
from tomobile.export.registry import ExportOptions
from tomobile.graphs import MergeConfig, merge_plan
from tomobile.graphs.models.hf_folder import load_local
from tomobile.runtime.runners.executorch import ExecuTorchRunner
from tomobile.runtime.runners.onnxruntime import OnnxRunner

BERT_INPUT_OPS = {"aten::embedding.out", "aten::full_like.out", "dim_order_ops::_to_dim_order_copy.out"}


def _bert_folder(folder: Path) -> Path:
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=1200, hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                                 intermediate_size=64)).eval()
    model.save_pretrained(folder)
    return folder


def test_tiny_bert_pitome_exports_to_onnx_and_executorch_and_validates(tmp_path):
    bundle = load_local(_bert_folder(tmp_path / "bert"), MergeConfig.parse("pitome:ratio=0.7"), seq_len=32)
    wrapper = bundle.parts["model"]
    plan = merge_plan(wrapper.model)
    assert plan.r == (9, 6, 4, 0) and plan.get("text")  # the first 3 layers, as their BERT patch
    out = tmp_path / "out"
    exported = export_model(bundle, ["onnx", "executorch"], out, ExportOptions(), require_pass=True, progress=False)
    manifest = exported.manifest
    assert manifest["merge"]["method"] == "pitome" == manifest["plan"]["method"]
    checks = manifest["validation"]["checks"]
    assert {c["artifact"] for c in checks} == {"model.onnx", "model.pte"}
    assert all(c["status"] == "pass" and c["max_abs_error"] <= 1e-4 for c in checks), checks
    (et,) = [a for a in manifest["artifacts"] if a["format"] == "executorch"]
    # Portable: only BERT's own input handling outside the encoder (the embedding lookup, the zero
    # token types, the mask cast); the merge adds none and the encoder is one XNNPACK partition.
    assert set(et["operators"]) <= BERT_INPUT_OPS and et["partitions"] == 1, et

    _padded_inputs_match_eager(wrapper, out)


def test_tiny_bert_tome_is_one_executorch_partition(tmp_path):
    """ToMe's mask update squeezed (`aten::squeeze_copy`, which XNNPACK does not take): 4 partitions.
    It reshapes now, as the PiToMe text layer does: one partition, the same numbers."""
    bundle = load_local(_bert_folder(tmp_path / "bert"), MergeConfig.parse("tome:r=4"), seq_len=32)
    out = tmp_path / "out"
    manifest = export_model(bundle, ["onnx", "executorch"], out, ExportOptions(), require_pass=True,
                            progress=False).manifest
    assert manifest["plan"]["method"] == "tome" and manifest["plan"]["tokens_per_layer"][-1] == 16
    assert all(c["status"] == "pass" and c["max_abs_error"] <= 1e-4 for c in manifest["validation"]["checks"])
    (et,) = [a for a in manifest["artifacts"] if a["format"] == "executorch"]
    assert set(et["operators"]) <= BERT_INPUT_OPS and et["partitions"] == 1, et
    _padded_inputs_match_eager(bundle.parts["model"], out)


@pytest.mark.slow  # reason: Core ML and Core AI conversions, about 30 s each on 2 loaded cores
@pytest.mark.parametrize("spec", ["pitome:ratio=0.7", "tome:r=4"])
def test_tiny_bert_exports_to_coreml_and_coreai(tmp_path, spec):
    """Core ML spec-checked as every Core ML export off macOS (names, static shapes, op types);
    Core AI validated numerically against eager (<= 1e-4 fp32)."""
    bundle = load_local(_bert_folder(tmp_path / "bert"), MergeConfig.parse(spec), seq_len=32)
    manifest = export_model(bundle, ["coreml", "coreai"], tmp_path / "out", ExportOptions(), require_pass=True,
                            progress=False).manifest
    checks = manifest["validation"]["checks"]
    coreml = [c for c in checks if c["artifact"] == "model.mlpackage"]
    coreai = [c for c in checks if c["artifact"] == "model.aimodel"]
    assert {c["output"] for c in coreml} == {c["output"] for c in coreai} == {"last_hidden_state", "pooler_output"}
    assert all(c["status"] == "needs macOS" and c["note"].startswith("spec ok") for c in coreml), coreml
    assert all(c["status"] == "pass" and c["max_abs_error"] <= 1e-4 for c in coreai), coreai


def _padded_inputs_match_eager(wrapper: torch.nn.Module, out: Path) -> None:
    """ONNX Runtime and ExecuTorch against eager on padded inputs (validation feeds all-real masks)."""
    gen = torch.Generator().manual_seed(3)
    onnx, pte = OnnxRunner(out / "model.onnx"), ExecuTorchRunner(out / "model.pte")
    for real in (5, 12, 20, 32):  # padding below r, between r and 2r, above 2r, none (r of PiToMe's first layer)
        ids = torch.randint(1000, 1200, (1, 32), generator=gen)
        mask = (torch.arange(32) < real).long()[None]
        ids[mask == 0] = 0
        with torch.no_grad():
            expected = [t.numpy() for t in wrapper(ids, mask)]
        for runner in (onnx, pte):
            for got, want in zip(runner.run([ids.numpy(), mask.numpy()]), expected, strict=True):
                assert np.abs(got - want).max() <= 1e-4, (runner, real)
