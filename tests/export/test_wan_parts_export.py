"""WanPipeline's text encoder and VAE decoders exported, validated against eager, and run on
ONNX Runtime, ExecuTorch and Core AI against diffusers' own modules (WanPipeline's encode_prompt
and its decode tail)."""

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")

from wan_fixture import PROMPT, WanParts, latent_shape, pipeline_decode, small_wan_pipeline  # noqa: E402

from tomobile.export.pipeline import export_model  # noqa: E402
from tomobile.export.registry import ExportOptions  # noqa: E402
from tomobile.graphs.models.exportable import ModelBundle  # noqa: E402
from tomobile.graphs.models.wan_text import WanTextEncoder  # noqa: E402
from tomobile.graphs.models.wan_vae import WanVaeDecoder, WanVaeDecoderChunk, decode_chunks  # noqa: E402
from tomobile.runtime.manifest_reader import read_manifest  # noqa: E402
from tomobile.runtime.runners import artifact_runner  # noqa: E402
from tomobile.runtime.wan_prompt import tokenize  # noqa: E402

LENGTH = 16


def runners(folder: Path, fmt: str) -> dict:
    """part -> numpy runner (list in, list out) for the `fmt` artifacts of an export folder."""
    out = {}
    for a in read_manifest(folder).artifacts:
        if a.format == fmt:
            runner = artifact_runner(folder, a)
            out[a.part] = lambda *arrays, r=runner: r.run(list(arrays))
    return out


def export_and_check(tmp_path: Path, name: str, parts: dict, formats: list[str], **options) -> Path:
    out = tmp_path / name
    exported = export_model(ModelBundle(name, parts), formats, out, ExportOptions(**options), progress=False)
    assert exported.report is not None and exported.report.passed, [c for c in exported.report.checks if not c.passed]
    return out


def check_text_encoder(pipe, folder: Path, fmt: str) -> None:
    run = runners(folder, fmt)["text_encoder"]
    for prompt in (PROMPT, ""):
        with torch.no_grad():
            ref, _ = pipe.encode_prompt(prompt, do_classifier_free_guidance=False, max_sequence_length=LENGTH)
        got = run(*tokenize(pipe.tokenizer, prompt, LENGTH))[0]
        assert np.abs(got - ref.numpy()).max() < 1e-5, (fmt, prompt)


def check_decoders(pipe, folder: Path, fmt: str, whole: bool) -> None:
    shape = latent_shape(pipe, 32, 32, 9)
    latents = torch.randn(shape, generator=torch.Generator().manual_seed(7))
    ref = pipeline_decode(pipe, latents)  # (1, 9, 32, 32, 3)
    run = runners(folder, fmt)
    if whole:
        got = run["vae_decoder"](latents.numpy())[0]
    else:
        got = decode_chunks(run["vae_decoder_first"], run["vae_decoder_chunk"], latents.numpy())
    assert got.shape == ref.shape and np.abs(got - ref).max() < 1e-5, (fmt, np.abs(got - ref).max())


def vae_parts(pipe, whole: bool) -> dict:
    shape = latent_shape(pipe, 32, 32, 9)
    if whole:
        return {"vae_decoder": WanVaeDecoder(pipe.vae, shape[2:]).eval()}
    return {"vae_decoder_first": WanVaeDecoderChunk(pipe.vae, shape[3:], True).eval(),
            "vae_decoder_chunk": WanVaeDecoderChunk(pipe.vae, shape[3:], False).eval()}


def test_text_encoder_on_onnx_runtime(tmp_path):
    pipe = small_wan_pipeline(WanParts())
    folder = export_and_check(tmp_path, "wan-text", {"text_encoder": WanTextEncoder(pipe.text_encoder, LENGTH).eval()},
                              ["onnx"])
    check_text_encoder(pipe, folder, "onnx")


@pytest.mark.slow  # several minutes on 2 shared cores: the decoders are graphs of 1,000 to 2,800 nodes
@pytest.mark.parametrize("fmt", ["onnx", "executorch", "coreai"])
def test_vae_decoders_on_every_runtime(tmp_path, fmt):
    # Measured: XNNPACK takes the decoders in 45-46 partitions (the decoder's RMS norms and
    # nearest-exact upsampling run on portable kernels).
    pipe = small_wan_pipeline(WanParts())
    for whole in (False, True):
        folder = export_and_check(tmp_path, f"wan-vae-{whole}", vae_parts(pipe, whole), [fmt])
        check_decoders(pipe, folder, fmt, whole)
        if not whole:  # the cache goes in as cache_k and out as next_cache_k (ONNX needs distinct names)
            spec = read_manifest(folder).parts["vae_decoder_chunk"]
            assert [i.name for i in spec.inputs][:2] == ["latent", "cache_0"]
            assert [o.name for o in spec.outputs][:2] == ["frames", "next_cache_0"]


@pytest.mark.slow
@pytest.mark.parametrize("fmt, options", [("coreai", {}), ("executorch", {"backend": "portable"})])
def test_text_encoder_on_coreai_and_executorch(tmp_path, fmt, options):
    # ExecuTorch 1.5.1's XNNPACK delegate fails UMT5 at run time ("Propagating input shapes failed",
    # invalid parameter); the portable backend runs it.
    pipe = small_wan_pipeline(WanParts())
    folder = export_and_check(tmp_path, "wan-text", {"text_encoder": WanTextEncoder(pipe.text_encoder, LENGTH).eval()},
                              [fmt], **options)
    check_text_encoder(pipe, folder, fmt)
