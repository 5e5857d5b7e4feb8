"""`tomobile export` of Stable Diffusion UNets with tomesd: a local diffusers pipeline folder to every
format (validated), the diffusers layout of the folder, and one-line errors on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tomobile.cli.main import main
from tomobile.graphs.methods.tomesd import TomesdConfig
from tomobile.graphs.models.sd_unet import SD_TINY, load_unet_folder, seeded_unet

SIZE = "64"  # 8x8 latents: the level-0 blocks merge 32 of 64 tokens; small enough for the default suite


@pytest.fixture(scope="module")
def pipeline_folder(tmp_path_factory) -> Path:
    """A diffusers pipeline folder as `save_pretrained` writes it: model_index.json + unet/ (safetensors)."""
    folder = tmp_path_factory.mktemp("sd") / "tiny-sd"
    seeded_unet(SD_TINY, seed=5).save_pretrained(folder / "unet", safe_serialization=True)
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline",
                                                         "unet": ["diffusers", "UNet2DConditionModel"]}))
    return folder


@pytest.fixture(scope="module")
def exported(pipeline_folder: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "tiny-sd"
    code = main(["-q", "export", str(pipeline_folder), "--merge", "tomesd:ratio=0.5", "--size", SIZE,
                 "--format", "onnx,coreml,executorch", "--out", str(out)])
    assert code == 0
    return out


# The export below takes minutes of CPU (ExecuTorch splits the UNet into many XNNPACK partitions,
# each one a graph recompile): `make test-all` runs it; the default suite keeps the bad-input tests,
# and tests/graphs/methods/test_tomesd.py the equality with the tomesd package.
EXPORT = pytest.mark.slow


@EXPORT
def test_local_pipeline_exports_to_every_format_and_validates(exported: Path):
    manifest = json.loads((exported / "manifest.json").read_text())
    assert manifest["validation"]["passed"]
    ran = {c["artifact"]: c for c in manifest["validation"]["checks"]}
    for path in ("unet/model.onnx", "unet/model.pte"):
        assert ran[path]["status"] == "pass" and ran[path]["max_abs_error"] <= 1e-4
    assert ran["unet/model.mlpackage"]["status"] in ("pass", "needs macOS")
    assert manifest["merge"] == TomesdConfig(0.5).to_json()
    merged = [b for b in manifest["tomesd_blocks"] if b]
    assert merged and all(b["r"] == 32 and b["h"] == 8 for b in merged)  # level 0 only (max_downsample=1)
    pte = next(a for a in manifest["artifacts"] if a["format"] == "executorch")
    assert pte["partitions"] >= 1  # reported (docs/stable_diffusion.md)


@EXPORT
def test_folder_keeps_diffusers_layout(exported: Path, pipeline_folder: Path):
    """unet/config.json beside unet/model.onnx (optimum's ORT pipeline looks there), optimum's I/O names."""
    config = json.loads((exported / "unet" / "config.json").read_text())
    assert config == json.loads((pipeline_folder / "unet" / "config.json").read_text())
    import onnx

    graph = onnx.load(str(exported / "unet" / "model.onnx"), load_external_data=False).graph
    assert [i.name for i in graph.input] == ["sample", "timestep", "encoder_hidden_states"]
    assert [o.name for o in graph.output] == ["out_sample"]


@EXPORT
def test_onnx_equals_eager_tomesd_model(exported: Path, pipeline_folder: Path):
    """The artifact against a freshly built eager model (not only the stored vectors)."""
    import onnxruntime as ort

    wrapper = load_unet_folder(pipeline_folder, TomesdConfig(0.5), size=SIZE).parts["unet/model"]
    inputs = wrapper.example_inputs(seed=7)
    with torch.no_grad():
        expected = wrapper(*inputs)[0].numpy()
    session = ort.InferenceSession(str(exported / "unet" / "model.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {s.name: x.numpy() for s, x in zip(wrapper.input_specs, inputs, strict=True)})[0]
    assert np.abs(got - expected).max() <= 1e-4


@EXPORT
def test_cfg_export_validates_in_every_format(tmp_path: Path):
    """--cfg: batch 2 with one (1,) timestep broadcast in the graph (what optimum sends with guidance);
    use_rand's fixed draw is used at batch 2. Validated against eager diffusers in every format."""
    import onnx

    out = tmp_path / "cfg"
    assert main(["-q", "export", "sd-unet-tiny", "--merge", "tomesd:ratio=0.5,use_rand=1,seed=3", "--cfg",
                 "--size", SIZE, "--format", "onnx,coreml,executorch", "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["validation"]["passed"] and manifest["pipeline"]["batch"] == 2
    ran = {c["artifact"]: c for c in manifest["validation"]["checks"]}
    for path in ("unet/model.onnx", "unet/model.pte"):
        assert ran[path]["status"] == "pass" and ran[path]["max_abs_error"] <= 1e-4
    assert ran["unet/model.mlpackage"]["status"] in ("pass", "needs macOS")
    graph = onnx.load(str(out / "unet" / "model.onnx"), load_external_data=False).graph
    dims = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.input}
    assert dims == {"sample": [2, 4, 8, 8], "timestep": [1], "encoder_hidden_states": [2, 77, 32]}


@pytest.mark.parametrize("argv,message", [
    (["sd-unet-tiny", "--merge", "tome:r=4"], "Stable Diffusion UNets take tomesd"),
    (["vit-tiny", "--merge", "tomesd:ratio=0.5"], "applies to Stable Diffusion UNets"),
    (["vit-tiny", "--size", "64"], "--size applies to diffusers models (ltx-tiny, ltx-video, sd-unet-tiny"),
    (["sd-unet-tiny", "--size", "60"], "multiple of 8"),
    (["sd-unet-tiny", "--merge", "tomesd:ratio=0.9,max_downsample=3"], "max_downsample"),
])
def test_bad_input_is_one_line(argv, message, tmp_path: Path, capsys):
    out = tmp_path / "out"
    assert main(["-q", "export", *argv, "--format", "onnx", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tomobile: error:") and message in err and "\n" not in err
    assert not out.exists()
