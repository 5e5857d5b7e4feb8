"""optimum's ONNX Runtime Stable Diffusion pipeline running tomobile's tomesd-merged UNet.

A tiny diffusers pipeline (SD-1.5's UNet structure at small widths, a 4-level VAE, a 2-layer CLIP
text model, tokenizer files written here: random seeded weights, no download) is exported by
optimum the way `ORTStableDiffusionPipeline` expects; its `unet/model.onnx` is then replaced by
tomobile's export of the same UNet with `tomesd:ratio=0.5`. optimum loads the folder and runs two
DDIM steps; the image must equal eager diffusers running the same pipeline with tomobile's patch
(which equals the tomesd package: tests/graphs/methods/test_tomesd.py) and differ from the unmerged one.
With guidance (guidance_scale > 1) the pipeline calls the UNet on batch 2 with one (1,) timestep:
tomobile's `--cfg` export takes exactly that and broadcasts the step to both halves in the graph.

Runs in the transformers 4.57 + optimum-onnx environment (`make test-hf457`), which installs
diffusers 0.39.0 for it (the `optimum-sd` extra).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.hf457

SIZE = 128  # pixels; latent 16 x 16
STEPS = 2
SPEC = "tomesd:ratio=0.5"
SPEC_CFG = "tomesd:ratio=0.5,use_rand=1,seed=3"  # batch 2: use_rand's draw (fixed at export) is used
GUIDANCE = 7.5


def _tokenizer(folder: Path):
    """A byte-level CLIP tokenizer with no merges: every byte is a token (written locally)."""
    from transformers import CLIPTokenizer
    from transformers.models.clip.tokenization_clip import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    vocab = {t: i for i, t in enumerate(chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"])}
    folder.mkdir(parents=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77), vocab


def _tiny_pipeline(folder: Path) -> None:
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from tomobile.graphs.models.sd_unet import SD_TINY

    tokenizer, vocab = _tokenizer(folder.parent / "tokenizer-src")
    torch.manual_seed(0)
    text = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=SD_TINY["cross_attention_dim"], intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=77, projection_dim=32, pad_token_id=1,
        bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"]))
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8, 16, 16),
                        layers_per_block=1, down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=8, sample_size=SIZE)
    scheduler = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tokenizer, unet=UNet2DConditionModel(**SD_TINY),
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(folder, safe_serialization=True)


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> tuple[Path, Path]:
    """(the diffusers pipeline folder, optimum's ONNX export of it)."""
    pytest.importorskip("optimum.onnxruntime", reason="optimum-onnx lives in the transformers 4.57 environment")
    pytest.importorskip("diffusers", reason="diffusers 0.39 is in the optimum-sd extra: make test-hf457")
    from optimum.exporters.onnx import main_export

    root = tmp_path_factory.mktemp("sd-optimum")
    _tiny_pipeline(root / "pipeline")
    main_export(str(root / "pipeline"), output=root / "optimum", task="text-to-image", device="cpu")
    return root / "pipeline", root / "optimum"


def _images(pipe, guidance: float) -> np.ndarray:
    latents = torch.randn(1, 4, SIZE // 8, SIZE // 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return pipe(prompt="a red circle moving left", latents=latents, num_inference_steps=STEPS,
                    guidance_scale=guidance, height=SIZE, width=SIZE, output_type="np").images  # (1, H, W, 3)


def _with_tomobile_unet(folders, root: Path, spec: str, *options: str) -> Path:
    """optimum's folder with tomobile's UNet export (`spec`, `options`) as unet/model.onnx, where optimum looks."""
    from tomobile.cli.main import main

    pipeline, optimum_folder = folders
    argv = ["-q", "export", str(pipeline), "--merge", spec, *options, "--format", "onnx", "--out", str(root / "export")]
    assert main(argv) == 0
    shutil.copytree(optimum_folder, root / "merged")
    shutil.copy(root / "export" / "unet" / "model.onnx", root / "merged" / "unet" / "model.onnx")
    return root / "merged"


@pytest.fixture(scope="module")
def merged(folders, tmp_path_factory) -> Path:
    """tomobile's batch-1 tomesd UNet in optimum's folder."""
    return _with_tomobile_unet(folders, tmp_path_factory.mktemp("sd-tomobile"), SPEC)


@pytest.fixture(scope="module")
def merged_cfg(folders, tmp_path_factory) -> Path:
    """tomobile's `--cfg` (batch 2) tomesd UNet in optimum's folder: guidance's two halves in one call."""
    return _with_tomobile_unet(folders, tmp_path_factory.mktemp("sd-tomobile-cfg"), SPEC_CFG, "--cfg")


def _eager_reference(pipeline: Path, spec: str, batch: int, guidance: float) -> np.ndarray:
    """Eager diffusers running the same pipeline with tomobile's patch on its UNet."""
    from diffusers import StableDiffusionPipeline

    from tomobile.graphs.methods.tomesd import apply_tomesd
    from tomobile.graphs.models.sd_unet import UNetModel
    from tomobile.graphs.spec.config import MergeConfig

    eager = StableDiffusionPipeline.from_pretrained(pipeline)
    apply_tomesd(eager.unet, MergeConfig.parse(spec).params, UNetModel(eager.unet, SIZE // 8, batch).example_inputs())
    return _images(eager, guidance=guidance)


def test_optimum_sd_pipeline_runs_tomobiles_merged_unet(folders, merged):
    from optimum.onnxruntime import ORTStableDiffusionPipeline

    ours = _images(ORTStableDiffusionPipeline.from_pretrained(merged), guidance=1.0)  # batch 1: no guidance
    plain = _images(ORTStableDiffusionPipeline.from_pretrained(folders[1]), guidance=1.0)
    reference = _eager_reference(folders[0], SPEC, 1, guidance=1.0)
    assert ours.shape == (1, SIZE, SIZE, 3)
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-4)  # measured 1.4e-6
    assert np.abs(ours - plain).max() > 1e-3  # the merge is in the graph optimum ran (measured 0.017)


def test_optimum_guidance_runs_tomobiles_cfg_unet(folders, merged_cfg):
    """guidance_scale > 1: optimum sends batch 2 and a (1,) timestep; the `--cfg` graph takes both."""
    import onnx
    from optimum.onnxruntime import ORTStableDiffusionPipeline

    graph = onnx.load(str(merged_cfg / "unet" / "model.onnx"), load_external_data=False).graph
    dims = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.input}
    assert dims["sample"][0] == 2 and dims["timestep"] == [1]  # the step is broadcast to the batch in the graph
    ours = _images(ORTStableDiffusionPipeline.from_pretrained(merged_cfg), guidance=GUIDANCE)
    plain = _images(ORTStableDiffusionPipeline.from_pretrained(folders[1]), guidance=GUIDANCE)
    reference = _eager_reference(folders[0], SPEC_CFG, 2, guidance=GUIDANCE)
    assert ours.shape == (1, SIZE, SIZE, 3)
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-4)  # measured 2.1e-6
    assert np.abs(ours - plain).max() > 1e-3  # the merge is in the graph optimum ran (measured 0.052)
    unguided = _images(ORTStableDiffusionPipeline.from_pretrained(folders[1]), guidance=1.0)
    assert np.abs(plain - unguided).max() > 1e-3  # guidance changed the image: both halves were used (0.65)


def test_a_batch_one_unet_refuses_guidance_batches_in_ort(merged):
    """The graph is static: guidance_scale > 1 runs the UNet on batch 2, which a batch-1 export refuses."""
    from optimum.onnxruntime import ORTStableDiffusionPipeline

    with pytest.raises(Exception, match="index: 0 Got: 2 Expected: 1"):
        _images(ORTStableDiffusionPipeline.from_pretrained(merged), guidance=7.5)
