"""`tomobile export` on diffusers video transformers: local Wan / LTX-Video folders, --merge tdtm,
--size HxW, --frames N, each format.

The artifacts are compared on their runtime with diffusers' own forward of the folder's weights
(plain) and with the TDTM rule applied to diffusers' own modules (graphs/methods/tdtm_attention.apply_tdtm), not
only with the exporter's eager wrapper. The ExecuTorch and Core ML exports take minutes on 2 cores
(ExecuTorch's lowering of diffusers' many small ops): they are `slow`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tomobile.cli.main import main
from tomobile.graphs.methods.tdtm_attention import TdtmRule, apply_tdtm
from tomobile.graphs.models import ltx

diffusers = pytest.importorskip("diffusers")
ort = pytest.importorskip("onnxruntime")

# A Wan 2.1 configuration no other test uses: 3 layers, 3 heads x 18, no cross-attention norm, 6 latent channels.
WAN_UNSEEN = dict(patch_size=(1, 2, 2), num_attention_heads=3, attention_head_dim=18, in_channels=6, out_channels=6,
                  text_dim=20, freq_dim=24, ffn_dim=40, num_layers=3, cross_attn_norm=False,
                  qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=48)


def test_models_lists_the_video_transformers(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in ("wan21-t2v-1.3b", "ltx-video", "wan-tiny", "ltx-tiny"):
        assert any(line.split()[:1] == [name] for line in out.splitlines()), name
    assert any(line.startswith("tdtm ") for line in out.splitlines())


def _save(model: torch.nn.Module, folder: Path) -> Path:
    model.save_pretrained(folder, safe_serialization=True)
    return folder


def _fresh(cls, folder: Path) -> torch.nn.Module:
    """The folder's transformer as diffusers builds it, unpatched (its own processors and rope)."""
    from safetensors.torch import load_file

    model = cls.from_config(cls.load_config(folder))
    model.load_state_dict(load_file(str(folder / "diffusion_pytorch_model.safetensors")))
    return model.eval()


def _run_onnx(path: Path, inputs: dict[str, np.ndarray]) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["out_hidden_states"], inputs)[0]


@pytest.mark.parametrize("frames,latent_frames", [(13, 4), (9, 3)], ids=["even", "odd"])
def test_wan_folder_of_an_unseen_config_equals_diffusers_and_the_rule_on_onnx_runtime(tmp_path, frames, latent_frames):
    torch.manual_seed(7)
    folder = _save(diffusers.WanTransformer3DModel(**WAN_UNSEEN).eval(), tmp_path / "wan-unseen")
    out = tmp_path / "out"
    assert main(["-q", "export", str(folder), "--merge", "tdtm", "--size", "48x80", "--frames", str(frames),
                 "--format", "onnx", "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["pipeline"]["latent"] == [latent_frames, 6, 10] and manifest["pipeline"]["text_tokens"] == 512
    assert json.loads((out / "transformer" / "config.json").read_text())["attention_head_dim"] == 18
    gen = torch.Generator().manual_seed(11)
    hidden = torch.randn(1, 6, latent_frames, 6, 10, generator=gen)
    timestep = torch.tensor([637.5])
    text = torch.randn(1, 512, 20, generator=gen)
    feeds = {"hidden_states": hidden.numpy(), "timestep": timestep.numpy(), "encoder_hidden_states": text.numpy()}
    reference = _fresh(diffusers.WanTransformer3DModel, folder)
    with torch.no_grad():
        plain = reference(hidden, timestep, text, return_dict=False)[0].numpy()
        apply_tdtm(reference, TdtmRule(latent_frames, 15))  # 6 x 10 latents: 3 x 5 patches per frame
        rule = reference(hidden, timestep, text, return_dict=False)[0].numpy()
    got_plain, got_tdtm = _run_onnx(out / "transformer.onnx", feeds), _run_onnx(out / "transformer_tdtm.onnx", feeds)
    assert np.abs(got_plain - plain).max() <= 1e-4
    assert np.abs(got_tdtm - rule).max() <= 1e-4
    assert np.abs(rule - plain).max() > 1e-2  # the two outputs differ: each is checked against its own reference
    files = {a["path"] for a in manifest["artifacts"]}
    assert files == {"transformer.onnx", "transformer_tdtm.onnx"}
    assert {a["weights"]["path"] for a in manifest["artifacts"]} == {"transformer.onnx.data"}  # one copy of the weights


def test_ltx_pipeline_folder_takes_its_transformer_and_vae_scale(tmp_path):
    """An LTXPipeline folder: transformer/ exported, the latent grid from vae/config.json (here a VAE
    compressing 8 x 8 x 4, not LTX-Video's 32 x 32 x 8), on ONNX Runtime and Core AI's runtime."""
    torch.manual_seed(5)
    folder = tmp_path / "ltx-pipeline"
    _save(diffusers.LTXVideoTransformer3DModel(**ltx.LTX_TINY).eval(), folder / "transformer")
    (folder / "vae").mkdir()
    (folder / "vae" / "config.json").write_text(json.dumps({
        "_class_name": "AutoencoderKLLTXVideo", "patch_size": 2, "patch_size_t": 1,
        "spatio_temporal_scaling": [True, True, False, False]}))
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "LTXPipeline",
                                                         "transformer": ["diffusers", "LTXVideoTransformer3DModel"]}))
    out = tmp_path / "out"
    assert main(["-q", "export", str(folder), "--merge", "tdtm", "--size", "64x32", "--frames", "13",
                 "--format", "onnx,coreai", "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["pipeline"]["latent"] == [4, 8, 4] and manifest["pipeline"]["vae_scale"] == {"spatial": 8,
                                                                                                 "temporal": 4}
    checks = manifest["validation"]["checks"]
    assert manifest["validation"]["passed"] and len(checks) == 4
    assert all(c["status"] == "pass" and c["max_abs_error"] <= 1e-4 for c in checks)
    reference = _fresh(diffusers.LTXVideoTransformer3DModel, folder / "transformer")
    vectors = np.load(out / "test_vectors" / "transformer.npz")
    inputs = [torch.from_numpy(vectors[f"seeded.input.{n}"]) for n in
              ("hidden_states", "timestep", "encoder_hidden_states", "encoder_attention_mask")]
    with torch.no_grad():
        plain = reference(inputs[0], inputs[2], inputs[1], inputs[3], num_frames=4, height=8, width=4,
                          rope_interpolation_scale=(4 / 25, 8, 8), return_dict=False)[0].numpy()
    assert np.abs(vectors["seeded.output.out_hidden_states"] - plain).max() <= 1e-5


EXPORT = pytest.mark.slow  # ExecuTorch lowering and Core ML conversion: minutes on 2 cores


@EXPORT
@pytest.mark.parametrize("model,size,frames", [("wan-tiny", "32x48", 13), ("ltx-tiny", "64x96", 17)])
def test_every_format_of_a_builtin_with_tdtm(tmp_path, model, size, frames):
    out = tmp_path / model
    assert main(["-q", "export", model, "--merge", "tdtm", "--size", size, "--frames", str(frames),
                 "--format", "onnx,executorch,coreai,coreml", "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    status = {c["artifact"]: c["status"] for c in manifest["validation"]["checks"]}
    assert status == {"transformer.onnx": "pass", "transformer_tdtm.onnx": "pass",
                      "transformer.pte:transformer": "pass", "transformer.pte:transformer_tdtm": "pass",
                      "transformer.aimodel:transformer": "pass", "transformer.aimodel:transformer_tdtm": "pass",
                      "transformer.mlpackage:transformer": "needs macOS",
                      "transformer.mlpackage:transformer_tdtm": "needs macOS"}
    pte = [a for a in manifest["artifacts"] if a["format"] == "executorch"]
    assert [(a["partitions"], a["portable_kernel_calls"]) for a in pte] == [(1, 0), (1, 0)]
    inputs = [i["name"] for i in manifest["parts"]["transformer"]["inputs"]]
    assert inputs[:3] == ["hidden_states", "timestep", "encoder_hidden_states"]
    assert [o["name"] for o in manifest["parts"]["transformer_tdtm"]["outputs"]] == ["out_hidden_states"]


@EXPORT
def test_wan_split_blocks_on_onnx_runtime_and_executorch(tmp_path):
    out = tmp_path / "split"
    assert main(["-q", "export", "wan-tiny", "--merge", "tdtm", "--size", "32x48", "--frames", "9", "--split", "blocks",
                 "--format", "onnx,executorch", "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    checks = manifest["validation"]["checks"]
    chains = [c for c in checks if c["artifact"].startswith("chain")]
    assert len(chains) == 4 and all(c["status"] == "pass" for c in checks)
    assert [p["name"] for p in manifest["split"]["parts"]][:2] == ["wan_embed", "wan_block00"]
