"""Export folders are Hugging Face-shaped: config.json, preprocessor or tokenizer files, HF input and
output names; a local Hugging Face ViT with ToMe exports and passes validation under transformers 5."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import torch

from tomobile.cli.main import main


def test_builtin_export_folder_is_hugging_face_shaped(vit_tiny_export: Path):
    from transformers import AutoConfig, AutoImageProcessor

    manifest = json.loads((vit_tiny_export / "manifest.json").read_text())
    assert set(manifest["files"]) == {"config.json", "preprocessor_config.json"}
    config = AutoConfig.from_pretrained(vit_tiny_export)
    assert config.model_type == "vit" and config.architectures == ["ViTForImageClassification"]
    processor = AutoImageProcessor.from_pretrained(vit_tiny_export)
    assert processor.size == {"height": 32, "width": 32}
    graph = onnx.load(str(vit_tiny_export / "model.onnx")).graph
    assert [i.name for i in graph.input] == ["pixel_values"] and [o.name for o in graph.output] == ["logits"]


def test_local_vit_with_tome_exports_and_validates(tmp_path: Path, capsys):
    from transformers import ViTConfig, ViTForImageClassification

    folder = tmp_path / "my-vit"
    torch.manual_seed(0)
    ViTForImageClassification(ViTConfig(image_size=32, patch_size=4, hidden_size=32, num_hidden_layers=2,
                                        num_attention_heads=2, intermediate_size=64, num_labels=3)).save_pretrained(folder)
    out = tmp_path / "out"
    capsys.readouterr()  # what save_pretrained printed
    assert main(["-q", "export", str(folder), "--merge", "tome:r=8", "--format", "onnx", "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert printed.err == ""  # -q: no progress bars, no library noise
    assert "validation PASSED" in printed.out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["validation"]["passed"] and manifest["plan"]["tokens_per_layer"] == [65, 57, 49]
    assert manifest["parts"]["model"]["outputs"] == [{"name": "logits", "shape": [1, 3], "dtype": "float32"}]
    assert json.loads((out / "config.json").read_text())["architectures"] == ["ViTForImageClassification"]
    assert (out / "preprocessor_config.json").is_file()
