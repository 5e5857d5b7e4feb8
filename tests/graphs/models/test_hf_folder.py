"""Local Hugging Face folders: the export holds what the checkpoint holds, and folders that cannot be
exported faithfully are refused in one line. Folders are tiny random models made with save_pretrained."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from tomobile.graphs import MergeConfig
from tomobile.graphs.models.hf_folder import FolderError, load_local

pytestmark = pytest.mark.both_lines

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
VISION = dict(image_size=32, patch_size=8, **TINY)


def save(model, folder: Path) -> Path:
    torch.manual_seed(0)
    model.save_pretrained(folder)
    return folder


def seeded(build):
    torch.manual_seed(0)
    return build().eval()


def outputs(folder: Path, spec: str = "none") -> tuple[tuple[str, ...], tuple[torch.Tensor, ...]]:
    wrapper = load_local(folder, MergeConfig.parse(spec)).parts["model"]
    with torch.no_grad():
        return wrapper.output_names, wrapper(*wrapper.example_inputs(seed=0))


def set_config(folder: Path, **changes) -> None:
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(changes)
    (folder / "config.json").write_text(json.dumps(cfg))


def test_bare_vit_exports_its_hidden_states_and_pooler_deterministically(tmp_path):
    from transformers import ViTConfig, ViTModel

    model = seeded(lambda: ViTModel(ViTConfig(**VISION)))
    folder = save(model, tmp_path / "vit")
    names, first = outputs(folder)
    assert names == ("last_hidden_state", "pooler_output")
    _, second = outputs(folder)
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)  # nothing freshly initialised: two loads agree exactly
    pixels = load_local(folder, MergeConfig()).parts["model"].example_inputs(seed=0)[0]
    with torch.no_grad():
        ref = model(pixel_values=pixels)
    torch.testing.assert_close(first[1], ref.pooler_output)
    assert outputs(folder, "tome:r=4")[1][0].shape == (1, 17 - 8, 32)  # 16 patches + class token, 2 merges


def test_backbone_saved_without_pooler_exports_hidden_states_only(tmp_path):
    from transformers import ViTConfig, ViTModel

    folder = save(seeded(lambda: ViTModel(ViTConfig(**VISION), add_pooling_layer=False)), tmp_path / "vit")
    assert outputs(folder)[0] == ("last_hidden_state",)


def test_classifier_head_exports_its_logits(tmp_path):
    from transformers import BertConfig, BertForSequenceClassification

    model = seeded(lambda: BertForSequenceClassification(BertConfig(vocab_size=1200, num_labels=3, **TINY)))
    folder = save(model, tmp_path / "bert-cls")
    wrapper = load_local(folder, MergeConfig()).parts["model"]
    ids, mask = wrapper.example_inputs(seed=0)
    with torch.no_grad():
        (logits,) = wrapper(ids, mask)
        ref = model(input_ids=ids, attention_mask=mask).logits
    assert wrapper.output_names == ("logits",)
    torch.testing.assert_close(logits, ref)
    config = json.loads(load_local(folder, MergeConfig()).generated_files["config.json"])
    assert config["architectures"] == ["BertForSequenceClassification"]


def test_head_missing_from_checkpoint_is_refused(tmp_path):
    """config.json names a classifier the weights do not hold: it would be newly initialised."""
    from transformers import ViTConfig, ViTModel

    folder = save(seeded(lambda: ViTModel(ViTConfig(**VISION))), tmp_path / "vit")
    set_config(folder, architectures=["ViTForImageClassification"])
    with pytest.raises(FolderError, match=r"newly initialised \(classifier\.bias, classifier\.weight\)"):
        load_local(folder, MergeConfig())


def test_unused_checkpoint_weights_are_named_in_one_warning(tmp_path, caplog):
    from transformers import ViTConfig, ViTForImageClassification

    folder = save(seeded(lambda: ViTForImageClassification(ViTConfig(num_labels=3, **VISION))), tmp_path / "vit")
    set_config(folder, architectures=["ViTModel"])
    with caplog.at_level(logging.WARNING, logger="tomobile.graphs.models.hf_folder"):
        names, _ = outputs(folder)
    assert names == ("last_hidden_state",)  # ViTForImageClassification keeps no pooler
    (record,) = [r for r in caplog.records if r.name == "tomobile.graphs.models.hf_folder"]
    assert "classifier.bias" in record.getMessage() and "\n" not in record.getMessage()


def test_clip_vision_towers_export_their_own_outputs(tmp_path):
    from transformers import CLIPVisionConfig, CLIPVisionModel, CLIPVisionModelWithProjection

    folder = save(seeded(lambda: CLIPVisionModel(CLIPVisionConfig(**VISION))), tmp_path / "clip-v")
    assert outputs(folder)[0] == ("last_hidden_state", "pooler_output")
    folder = save(seeded(lambda: CLIPVisionModelWithProjection(CLIPVisionConfig(projection_dim=24, **VISION))),
                  tmp_path / "clip-vp")
    names, (embeds, _) = outputs(folder)
    assert names == ("image_embeds", "last_hidden_state") and embeds.shape == (1, 24)


def test_full_clip_model_exports_its_vision_tower_with_the_real_projection(tmp_path):
    from transformers import CLIPConfig, CLIPModel

    cfg = CLIPConfig(text_config=dict(vocab_size=100, **TINY), vision_config=VISION, projection_dim=24)
    model = seeded(lambda: CLIPModel(cfg))
    folder = save(model, tmp_path / "clip")
    bundle = load_local(folder, MergeConfig())
    wrapper = bundle.parts["model"]
    (pixels,) = wrapper.example_inputs(seed=0)
    with torch.no_grad():
        embeds, _ = wrapper(pixels)
        ref = model.visual_projection(model.vision_model(pixel_values=pixels).pooler_output)
    assert embeds.shape == (1, 24)
    torch.testing.assert_close(embeds, ref)
    exported = json.loads(bundle.generated_files["config.json"])
    assert exported["architectures"] == ["CLIPVisionModelWithProjection"] and exported["projection_dim"] == 24


def test_sentence_transformers_folder_gets_sentence_embedding(tmp_path):
    from transformers import BertConfig, BertModel

    folder = save(seeded(lambda: BertModel(BertConfig(vocab_size=1200, **TINY))), tmp_path / "st")
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
    names, (tokens, sentence) = outputs(folder)
    assert names == ("last_hidden_state", "sentence_embedding")
    torch.testing.assert_close(sentence, tokens.mean(dim=1))  # mean over all-real tokens, no Normalize module


def _vit_folder(tmp_path: Path) -> Path:
    from transformers import ViTConfig, ViTForImageClassification

    return save(seeded(lambda: ViTForImageClassification(ViTConfig(num_labels=3, **VISION))), tmp_path / "vit")


def _bert_folder(tmp_path: Path, **cfg) -> Path:
    from transformers import BertConfig, BertModel

    return save(seeded(lambda: BertModel(BertConfig(**{"vocab_size": 1200, **TINY, **cfg}))), tmp_path / "bert")


def _no_weights(tmp_path: Path) -> Path:
    folder = _vit_folder(tmp_path)
    (folder / "model.safetensors").unlink()
    return folder


def _truncated(tmp_path: Path) -> Path:
    folder = _vit_folder(tmp_path)
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    return folder


def _garbage_header(tmp_path: Path) -> Path:
    folder = _vit_folder(tmp_path)
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[8:40] = b"\xff" * 32  # the JSON header
    (folder / "model.safetensors").write_bytes(bytes(data))
    return folder


def _corrupt_bin(tmp_path: Path) -> Path:
    folder = _vit_folder(tmp_path)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"not a torch checkpoint" * 10)
    return folder


def _vocab_is_a_folder(tmp_path: Path) -> Path:
    folder = _bert_folder(tmp_path)
    (folder / "vocab.txt").mkdir()  # issue 18, item 5: IsADirectoryError from transformers
    return folder


def _broken_tokenizer_json(tmp_path: Path) -> Path:
    folder = _bert_folder(tmp_path)
    (folder / "tokenizer.json").write_text('{"version": "1.0", "model": ')  # item 18: name the file
    return folder


def _non_square(tmp_path: Path) -> Path:
    folder = _vit_folder(tmp_path)
    set_config(folder, image_size=[32, 48])
    return folder


BAD_FOLDERS = {
    "config without weights": (_no_weights, "has config.json but no weights"),
    "truncated safetensors": (_truncated, "is truncated or corrupt"),
    "corrupt safetensors header": (_garbage_header, "not a valid safetensors file"),
    "corrupt pytorch_model.bin": (_corrupt_bin, "transformers could not load its weights as ViTForImageClassification"),
    "non-square image_size": (_non_square, r"image_size \[32, 48\] in .* is not square"),
    "vocabulary below 1000": (lambda p: _bert_folder(p, vocab_size=500), "vocab_size 500 in .* is too small"),
    "vocab.txt is a folder": (_vocab_is_a_folder, r"vocab.txt is not a regular file"),
    "broken tokenizer.json": (_broken_tokenizer_json, r"the tokenizer in .*tokenizer.json cannot be loaded"),
    "too few positions": (lambda p: _bert_folder(p, max_position_embeddings=64),
                          "max_position_embeddings 64 in .* is below the exported sequence length 128"),
}


@pytest.mark.parametrize("case", list(BAD_FOLDERS))
def test_bad_folder_is_one_line_error_exit_2_nothing_written(tmp_path, capsys, case):
    from tomobile.cli.main import main

    make, needle = BAD_FOLDERS[case]
    folder = make(tmp_path)
    with pytest.raises(FolderError, match=needle):
        load_local(folder, MergeConfig())
    out = tmp_path / "out"
    before = sorted(p.name for p in tmp_path.iterdir())
    capsys.readouterr()  # what making the folder printed
    assert main(["-q", "export", str(folder), "--format", "onnx", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tomobile: error:") and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing created, no staging folder


@pytest.mark.parametrize("model_type", ["vit", "deit"])
def test_one_channel_folder_gets_a_processor_config_its_images_go_through(tmp_path, model_type):
    """Issue 18, item 17: a 1-channel ViT export wrote a 3-value mean/std; AutoImageProcessor failed."""
    import numpy as np
    from transformers import AutoImageProcessor, DeiTConfig, DeiTModel, ViTConfig, ViTModel

    cls, cfg = {"vit": (ViTModel, ViTConfig), "deit": (DeiTModel, DeiTConfig)}[model_type]
    folder = save(seeded(lambda: cls(cfg(num_channels=1, **VISION))), tmp_path / model_type)
    bundle = load_local(folder, MergeConfig())
    data = json.loads(bundle.generated_files["preprocessor_config.json"])
    assert len(data["image_mean"]) == len(data["image_std"]) == 1
    out = tmp_path / "out"
    out.mkdir()
    (out / "preprocessor_config.json").write_text(bundle.generated_files["preprocessor_config.json"])
    image = np.random.default_rng(0).integers(0, 255, (40, 40, 1), dtype=np.uint8)
    pixels = AutoImageProcessor.from_pretrained(out)(image, return_tensors="np", input_data_format="channels_last")
    assert pixels["pixel_values"].shape == (1, 1, 32, 32)
