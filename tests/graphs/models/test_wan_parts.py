"""WanPipeline's text encoder and VAE decoder as exportable modules, against diffusers' own modules."""

import html

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")

from wan_fixture import PROMPT, WanParts, latent_shape, pipeline_decode, small_wan_pipeline  # noqa: E402

from tomobile.graphs.errors import TomobileError  # noqa: E402
from tomobile.graphs.models.wan_text import WanTextEncoder  # noqa: E402
from tomobile.graphs.models.wan_vae import ConvSpelling, WanVaeDecoder, WanVaeDecoderChunk, decode_chunks  # noqa: E402
from tomobile.runtime.wan_generate import eager_module  # noqa: E402
from tomobile.runtime.wan_prompt import prompt_clean, tokenize  # noqa: E402

LENGTH = 16


@pytest.fixture(scope="module")
def pipe():
    return small_wan_pipeline(WanParts())


@pytest.mark.parametrize("text", ["  a red&amp;amp;circle\n\tmoving   left ", "&lt;b&gt; the cat", "", "x\u00a0y"])
def test_prompt_clean_is_wanpipelines(text):
    from diffusers.pipelines.wan.pipeline_wan import prompt_clean as diffusers_clean

    assert prompt_clean(text) == diffusers_clean(text)
    assert html.unescape("&amp;") == "&"


@pytest.mark.parametrize("prompt", [PROMPT, "", "  the   blue square &amp; moving up  "])
def test_text_encoder_equals_wanpipelines_prompt_embeds(prompt):
    pipe = small_wan_pipeline(WanParts(seed=1))  # its own: the wrapper switches the encoder's attention
    with torch.no_grad():
        ref, _ = pipe.encode_prompt(prompt, do_classifier_free_guidance=False, max_sequence_length=LENGTH)
    wrapper = WanTextEncoder(pipe.text_encoder, LENGTH).eval()
    ids, mask = tokenize(pipe.tokenizer, prompt, LENGTH)
    with torch.no_grad():
        ours = wrapper(torch.from_numpy(ids), torch.from_numpy(mask))[0]
    n = int(mask.sum())
    assert torch.all(ours[0, n:] == 0) and torch.all(ref[0, n:] == 0)
    # transformers' eager attention (the wrapper's) against its sdpa (WanPipeline's default)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)


def test_a_prompt_longer_than_the_text_length_is_refused_in_one_line(pipe):
    with pytest.raises(TomobileError, match="has 7 tokens .* text length is 6") as err:
        tokenize(pipe.tokenizer, PROMPT + " fast", 6)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("spelling, tol", [(ConvSpelling.CONV3D, 0.0), (ConvSpelling.TAPS, 1e-6)])
def test_vae_decoders_equal_wanpipelines_decode(pipe, spelling, tol):
    shape = latent_shape(pipe, 32, 32, 9)  # (1, 16, 3, 4, 4)
    latents = torch.randn(shape, generator=torch.Generator().manual_seed(3))
    ref = pipeline_decode(pipe, latents)  # (1, 9, 32, 32, 3)
    whole = WanVaeDecoder(pipe.vae, shape[2:], spelling).eval()
    first = WanVaeDecoderChunk(pipe.vae, shape[3:], True, spelling).eval()
    chunk = WanVaeDecoderChunk(pipe.vae, shape[3:], False, spelling).eval()
    chained = decode_chunks(_all_outputs(first), _all_outputs(chunk), latents.numpy())
    assert ref.shape == (1, 9, 32, 32, 3) and chained.shape == ref.shape
    assert np.abs(eager_module(whole)(latents.numpy()) - ref).max() <= tol
    assert np.abs(chained - ref).max() <= tol


def test_the_taps_spelling_leaves_the_vae_as_it_was(pipe):
    from diffusers.models.autoencoders.autoencoder_kl_wan import WanCausalConv3d

    before = sum(isinstance(m, WanCausalConv3d) for m in pipe.vae.modules())
    wrapper = WanVaeDecoder(pipe.vae, (3, 4, 4), ConvSpelling.TAPS)
    assert sum(isinstance(m, WanCausalConv3d) for m in pipe.vae.modules()) == before > 0
    assert not any(isinstance(m, WanCausalConv3d) for m in wrapper.vae.decoder.modules())
    ours = {p.data_ptr() for p in wrapper.vae.decoder.parameters()}
    assert ours == {p.data_ptr() for p in pipe.vae.decoder.parameters()}  # shared, not copied


def test_chunk_caches_are_two_frames_with_zeros_where_diffusers_keeps_fewer(pipe):
    first = WanVaeDecoderChunk(pipe.vae, (4, 4), True).eval()
    with torch.no_grad():
        out = first(torch.randn(1, 16, 1, 4, 4))
    assert out[0].shape == (1, 1, 32, 32, 3)  # latent frame 0 decodes to video frame 0 alone
    caches = out[1:]
    assert len(caches) == len(first.shapes) and all(c.shape[2] == 2 for c in caches)
    assert all(torch.all(c[:, :, 0] == 0) for c in caches)  # chunk 0 saw one frame: the older is padding
    assert [s.name for s in WanVaeDecoderChunk(pipe.vae, (4, 4), False).input_specs][:2] == ["latent", "cache_0"]


def _all_outputs(module):
    """numpy in, every output out (the chunk decoders return frames and the cache)."""

    @torch.no_grad()
    def run(*arrays):
        return [t.numpy() for t in module(*(torch.from_numpy(a) for a in arrays))]

    return run
