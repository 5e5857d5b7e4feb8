"""tomobile export folders used from the Hugging Face ecosystem: optimum's ORTModel classes load them,
give the merged model's numbers, run in `transformers.pipeline`, and pass optimum's own output check.

Runs in the second environment (transformers 4.57 + optimum-onnx: `make test-hf457`), as part of
`make test`. The image is a real photograph that ships inside matplotlib; the sentences are the
first sentences of Python's own help topics.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.hf457

ATOL = 1e-4
SEQ_LEN = 128


def photo():
    """Grace Hopper's portrait, from matplotlib's sample data (a real photograph, no download)."""
    import matplotlib
    from PIL import Image

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    return Image.open(path).convert("RGB")


def export(model: str, spec: str, out: Path) -> Path:
    from tomobile.cli.main import main

    assert main(["-q", "export", model, "--merge", spec, "--format", "onnx", "--out", str(out)]) == 0
    return out


def eager(model: str, spec: str):
    """The same model, patched the same way, in eager PyTorch: the export's reference."""
    from tomobile.graphs import MergeConfig
    from tomobile.graphs.models.hf_folder import load_local
    from tomobile.graphs.models.registry import get_model

    config = MergeConfig.parse(spec)
    bundle = load_local(Path(model), config) if Path(model).is_dir() else get_model(model).builder(config)
    return bundle.parts["model"]


@pytest.fixture(scope="module")
def ort():
    """optimum.onnxruntime; the main suite deselects these tests, so this skip shows only when they
    are selected in an environment without optimum."""
    return pytest.importorskip("optimum.onnxruntime", reason="optimum-onnx lives in the transformers 4.57 "
                                                             "environment: make test-hf457")


@pytest.fixture(scope="module")
def local_vit(tmp_path_factory) -> Path:
    """A local Hugging Face ViT classifier folder (random weights), as a user would have one."""
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    folder = tmp_path_factory.mktemp("hf") / "vit-local"
    torch.manual_seed(0)
    cfg = ViTConfig(image_size=64, patch_size=8, hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
                    intermediate_size=128, num_labels=5, id2label={i: f"class {i}" for i in range(5)})
    ViTForImageClassification(cfg).save_pretrained(folder)
    ViTImageProcessor(size={"height": 64, "width": 64}).save_pretrained(folder)
    return folder


def _image_classification(ort, model: str, spec: str, out: Path) -> None:
    from transformers import AutoImageProcessor, pipeline

    folder = export(model, spec, out)
    ort_model = ort.ORTModelForImageClassification.from_pretrained(folder)
    processor = AutoImageProcessor.from_pretrained(folder)
    pixels = processor(photo(), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        (want,) = eager(model, spec)(pixels)
    got = ort_model(pixel_values=pixels).logits
    assert got.shape == want.shape
    assert float((got - want).abs().max()) <= ATOL
    ranked = pipeline("image-classification", model=ort_model, image_processor=processor)(photo(), top_k=3)
    probs = want.softmax(-1)[0]
    top = probs.topk(3)
    labels = ort_model.config.id2label
    assert [r["label"] for r in ranked] == [labels[int(i)] for i in top.indices]
    np.testing.assert_allclose([r["score"] for r in ranked], top.values.numpy(), atol=ATOL)


def test_local_vit_with_tome_loads_in_optimum_and_runs_a_pipeline(ort, local_vit, tmp_path):
    _image_classification(ort, str(local_vit), "tome:r=8", tmp_path / "vit")


@pytest.mark.parametrize("model", ["vit-tiny", "deit-tiny"])
def test_builtin_image_models_load_in_optimum_and_run_a_pipeline(ort, model, tmp_path):
    _image_classification(ort, model, "tome:r=8", tmp_path / model)


@pytest.mark.parametrize("model", ["local", "deit-tiny"])
def test_optimum_validate_model_outputs_at_its_default_tolerance(ort, model, local_vit, tmp_path):
    """optimum's own export check (ONNX Runtime against the reference model, atol 1e-5), run on
    tomobile's file with the ToMe-patched Hugging Face model as the reference."""
    from optimum.exporters.onnx import validate_model_outputs
    from optimum.exporters.tasks import TasksManager

    name = str(local_vit) if model == "local" else model
    folder = export(name, "tome:r=8", tmp_path / "out")
    reference = eager(name, "tome:r=8").model
    onnx_config = TasksManager.get_exporter_config_constructor(
        "onnx", model=reference, task="image-classification")(reference.config)
    assert onnx_config.ATOL_FOR_VALIDATION == 1e-5
    validate_model_outputs(onnx_config, reference, folder / "model.onnx", ["logits"],
                           input_shapes={"batch_size": 1}, use_subprocess=False)


def test_minilm_loads_as_feature_extraction_and_runs_a_pipeline_on_real_sentences(ort, tmp_path):
    from transformers import AutoTokenizer, pipeline

    from tomobile.runtime.text_eval import help_topic_pairs

    folder = export("minilm-l6", "tome:r=4", tmp_path / "minilm")
    assert json.loads((folder / "config.json").read_text())["architectures"] == ["BertModel"]
    ort_model = ort.ORTModelForFeatureExtraction.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    sentences = [p.query for p in help_topic_pairs(limit=4)]
    padding = {"padding": "max_length", "max_length": SEQ_LEN, "truncation": True}
    wrapper = eager("minilm-l6", "tome:r=4")
    extract = pipeline("feature-extraction", model=ort_model, tokenizer=tokenizer)
    for sentence in sentences:
        enc = tokenizer(sentence, return_tensors="pt", **padding)
        real = enc["attention_mask"][0].bool()  # padding states are masked out of every use (1.7e-5-6.4e-5 here)
        with torch.no_grad():
            tokens, _ = wrapper(enc["input_ids"], enc["attention_mask"])
        got = ort_model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
        assert got.shape == tokens.shape == (1, SEQ_LEN, 384)
        assert float((got - tokens)[0, real].abs().max()) <= ATOL
        piped = extract(sentence, tokenize_kwargs=padding, return_tensors=True)
        assert float((piped - tokens)[0, real].abs().max()) <= ATOL
