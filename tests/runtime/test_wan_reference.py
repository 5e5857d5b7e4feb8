"""The reference the Wan integration builds on: numpy sampler + the exportable text encoder +
diffusers' own transformer (plain, eager) + the exportable VAE decoder equal WanPipeline's frames
from the same latents, for Euler and UniPC; a saved pipeline folder loads back and runs the same."""

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("accelerate")

from wan_fixture import PROMPT, WanParts, latent_shape, save_and_load, small_wan_pipeline  # noqa: E402

from tomobile.graphs.models.wan_text import WanTextEncoder  # noqa: E402
from tomobile.graphs.models.wan_vae import WanVaeDecoder  # noqa: E402
from tomobile.runtime.flow_sampler import FlowSamplerConfig  # noqa: E402
from tomobile.runtime.flow_schedule import flow_schedule  # noqa: E402
from tomobile.runtime.report import psnr  # noqa: E402
from tomobile.runtime.sampler import LeapConfig  # noqa: E402
from tomobile.runtime.wan_generate import WanRun, eager_encoder, eager_module, eager_transformer, wan_generate  # noqa: E402

SIZE, FRAMES, STEPS, GUIDANCE, LENGTH = 32, 9, 4, 5.0, 16


def scheduler_dict(pipe) -> dict:
    """The pipeline's scheduler_config.json as a dict (what an export folder carries)."""
    return {**dict(pipe.scheduler.config), "_class_name": type(pipe.scheduler).__name__}


def our_run(pipe) -> WanRun:
    shape = latent_shape(pipe, SIZE, SIZE, FRAMES)
    text = WanTextEncoder(pipe.text_encoder, LENGTH).eval()
    return WanRun(eager_encoder(pipe.tokenizer, text, LENGTH), eager_transformer(pipe.transformer),
                  eager_module(WanVaeDecoder(pipe.vae, shape[2:]).eval()))


def diffusers_frames(pipe, latents: torch.Tensor, prompt: str = PROMPT, **kwargs) -> np.ndarray:
    return pipe(prompt, height=SIZE, width=SIZE, num_frames=FRAMES, num_inference_steps=STEPS, guidance_scale=GUIDANCE,
                latents=latents.clone(), output_type="np", max_sequence_length=LENGTH, **kwargs).frames


@pytest.mark.parametrize("scheduler", ["unipc", "euler"])
def test_our_pieces_give_wanpipelines_frames(scheduler):
    pipe = small_wan_pipeline(WanParts(scheduler=scheduler))
    latents = torch.randn(latent_shape(pipe, SIZE, SIZE, FRAMES), generator=torch.Generator().manual_seed(1))
    ref = diffusers_frames(pipe, latents)  # (1, 9, 32, 32, 3) in [0, 1]
    clip = wan_generate(our_run(pipe), PROMPT, latents.numpy(),
                        FlowSamplerConfig(flow_schedule(scheduler_dict(pipe), STEPS), guidance=GUIDANCE))
    assert clip.frames.shape == ref.shape == (1, FRAMES, SIZE, SIZE, 3) and clip.result.calls == STEPS
    assert psnr(ref, clip.frames, peak=1.0) >= 70.0  # measured: 148.7 dB (UniPC), 149.1 dB (Euler)


def test_negative_prompt_and_guidance_one_follow_wanpipeline():
    pipe = small_wan_pipeline(WanParts(scheduler="euler", seed=2))
    latents = torch.randn(latent_shape(pipe, SIZE, SIZE, FRAMES), generator=torch.Generator().manual_seed(2))
    run = our_run(pipe)
    schedule = flow_schedule(scheduler_dict(pipe), STEPS)
    ref = diffusers_frames(pipe, latents, negative_prompt="the dog at night")
    ours = wan_generate(run, PROMPT, latents.numpy(), FlowSamplerConfig(schedule, guidance=GUIDANCE),
                        negative_prompt="the dog at night").frames
    assert psnr(ref, ours, peak=1.0) >= 70.0
    ref1 = pipe(PROMPT, height=SIZE, width=SIZE, num_frames=FRAMES, num_inference_steps=STEPS, guidance_scale=1.0,
                latents=latents.clone(), output_type="np", max_sequence_length=LENGTH).frames
    ours1 = wan_generate(run, PROMPT, latents.numpy(), FlowSamplerConfig(schedule, guidance=1.0))
    assert psnr(ref1, ours1.frames, peak=1.0) >= 70.0
    assert np.abs(ref1 - ref).max() > 1e-3  # guidance and the negative prompt matter here


def test_a_saved_pipeline_loads_back_and_gives_the_same_frames(tmp_path):
    pipe = small_wan_pipeline(WanParts())
    loaded = save_and_load(pipe, tmp_path / "wan")
    assert (tmp_path / "wan" / "model_index.json").exists()
    assert (tmp_path / "wan" / "scheduler" / "scheduler_config.json").exists()
    assert scheduler_dict(loaded)["_class_name"] == "UniPCMultistepScheduler"
    latents = torch.randn(latent_shape(pipe, SIZE, SIZE, FRAMES), generator=torch.Generator().manual_seed(4))
    # from_pretrained loads UMT5 as transformers does (its attention kernel may differ in the last bits)
    np.testing.assert_allclose(diffusers_frames(loaded, latents), diffusers_frames(pipe, latents), atol=1e-6, rtol=0)


def test_lpl_on_the_pipeline_leaps_with_the_flow_data_estimate():
    pipe = small_wan_pipeline(WanParts())
    latents = torch.randn(latent_shape(pipe, SIZE, SIZE, FRAMES), generator=torch.Generator().manual_seed(5))
    schedule = flow_schedule(scheduler_dict(pipe), 6)
    clip = wan_generate(our_run(pipe), PROMPT, latents.numpy(),
                        FlowSamplerConfig(schedule, guidance=GUIDANCE, leap=LeapConfig.parse("3")))
    assert clip.result.calls == 4 and clip.result.leap_at == 3
    assert clip.frames.shape == (1, FRAMES, SIZE, SIZE, 3) and np.all(np.isfinite(clip.frames))
