"""WanPipeline's VAE decoder (diffusers' AutoencoderKLWan) as exportable static-shape modules.

    WanVaeDecoder       the whole decode at one latent shape: latents (1, z, F, h, w) ->
                        frames (1, N, H, W, 3) in [0, 1], N = 4 (F - 1) + 1 (Wan 2.1's VAE)
    WanVaeDecoderChunk  one latent frame at a time, the causal cache explicit: `first` decodes
                        latent frame 0 alone; every later frame takes the cache in and gives it
                        out; `decode_chunks` chains them on the host

Both do what WanPipeline does after sampling: latents / (1 / latents_std) + latents_mean (its
exact expression), the decode (post_quant_conv, decoder, clamp to [-1, 1]), then diffusers' "np"
post-processing (x * 0.5 + 0.5, clamped to [0, 1], channels last). The whole decoder traces as it
is (diffusers' per-frame loop unrolls at a fixed frame count); the chunked one is one graph for
any length and holds one frame's activations at a time, for phones.

The causal cache: each causal conv keeps the last 2 frames of its input (diffusers' CACHE_T); a
missing frame is zero padding. Chunk 0 leaves 1-frame caches, and the temporal upsamplers only
mark themselves ("Rep") and skip their time conv, so chunk 0 gives one video frame, every later
chunk 4. Stored here as 2 frames, zeros in front where diffusers keeps fewer, every chunk after
the first is one graph: a conv that pads a missing frame with zeros computes what one that finds
a zero frame in its cache computes.

Conv spelling (`ConvSpelling`): ExecuTorch's portable and XNNPACK kernels have no 3D convolution,
so by default the decoders run on a structural copy of the VAE (parameters shared, not copied)
whose causal convs compute as a sum of 2D convolutions, one per temporal tap (`CausalConvTaps`);
`conv3d` keeps diffusers' modules as they are (equal to `vae.decode` to the bit in eager).
`WanVaeDecoder` given no spelling takes conv3d for ONNX and taps for the other formats.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator, Sequence
from enum import Enum

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .exportable import Exportable, TensorSpec

CACHE_FRAMES = 2  # diffusers' CACHE_T: a causal conv of kernel 3 needs the 2 frames before its input


class ConvSpelling(str, Enum):
    CONV3D = "conv3d"  # diffusers' WanCausalConv3d as it is
    TAPS = "taps"  # a 2D convolution per temporal tap, summed (runs on ExecuTorch)


def _causal_conv_class() -> type:
    from diffusers.models.autoencoders.autoencoder_kl_wan import WanCausalConv3d  # diffusers is an extra

    return WanCausalConv3d


class CausalConvTaps(nn.Module):
    """diffusers' WanCausalConv3d computed as 2D convolutions: out[t] = sum_k conv2d(x[t s + k], W[:, :, k]).

    Same weights (shared), same causal padding and cache handling; the time axis folds into the
    batch, so no tensor goes above 5-D. Differs from the 3D convolution by summation order only."""

    def __init__(self, conv: nn.Conv3d) -> None:
        super().__init__()
        self.weight, self.bias = conv.weight, conv.bias
        self._padding = conv._padding  # (w, w, h, h, 2 p_t, 0): causal in time
        self.stride = conv.stride

    def forward(self, x: torch.Tensor, cache_x: torch.Tensor | None = None) -> torch.Tensor:
        padding = list(self._padding)
        if cache_x is not None and self._padding[4] > 0:
            x = torch.cat([cache_x, x], dim=2)
            padding[4] -= cache_x.shape[2]
        x = F.pad(x, padding)  # (B, C, T, H, W)
        b, c, t, h, w = x.shape
        taps, st = self.weight.shape[2], self.stride[0]
        t_out = (t - taps) // st + 1
        out = None
        for k in range(taps):
            xs = x[:, :, k:k + st * (t_out - 1) + 1:st].transpose(1, 2).reshape(b * t_out, c, h, w)  # (B*T', C, H, W)
            y = F.conv2d(xs, self.weight[:, :, k], self.bias if k == 0 else None, stride=self.stride[1:])
            out = y if out is None else out + y  # (B*T', C', H', W')
        return out.reshape(b, t_out, *out.shape[1:]).transpose(1, 2)  # (B, C', T', H', W')


def spelled(vae: nn.Module, spelling: ConvSpelling) -> nn.Module:
    """`vae` itself (conv3d), or a copy of its module tree sharing every parameter and buffer whose
    causal convs are CausalConvTaps (taps). The VAE given is never changed."""
    if ConvSpelling(spelling) is ConvSpelling.CONV3D:
        return vae
    memo = {id(t): t for t in [*vae.parameters(), *vae.buffers()]}
    twin = copy.deepcopy(vae, memo)
    conv = _causal_conv_class()
    for _, module in list(twin.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, conv):
                setattr(module, child_name, CausalConvTaps(child))
    return twin


class LatentScaling(nn.Module):
    """WanPipeline's un-scaling of sampled latents: latents / (1 / std) + mean, per channel, float32."""

    def __init__(self, vae: nn.Module) -> None:
        super().__init__()
        z = int(vae.config.z_dim)
        self.register_buffer("mean", torch.tensor(vae.config.latents_mean).view(1, z, 1, 1, 1), persistent=False)
        self.register_buffer("inv_std", 1.0 / torch.tensor(vae.config.latents_std).view(1, z, 1, 1, 1),
                             persistent=False)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return latents / self.inv_std + self.mean


def to_frames(video: torch.Tensor) -> torch.Tensor:
    """Decoded video (1, 3, N, H, W) in [-1, 1] -> frames (1, N, H, W, 3) in [0, 1], as diffusers'
    VideoProcessor.postprocess_video(output_type="np")."""
    return (video * 0.5 + 0.5).clamp(0, 1).permute(0, 2, 3, 4, 1)


class WanVaeDecoder(Exportable):
    """AutoencoderKLWan.decode at a static latent shape (1, z, F, h, w), between WanPipeline's
    un-scaling and diffusers' "np" post-processing; diffusers' decode runs as it is.

    `convs` None: spelled per format, diffusers' 3D convolutions for ONNX (one Conv node each, a
    smaller graph that exports faster) and taps elsewhere (ExecuTorch has no 3D convolution; Core
    AI was validated with taps); eager runs taps."""

    output_names = ("frames",)

    def __init__(self, vae: nn.Module, latent_shape: tuple[int, int, int], convs: ConvSpelling | None = None) -> None:
        super().__init__()
        self.fixed = None if convs is None else ConvSpelling(convs)
        twins = {s: spelled(vae, s) for s in ConvSpelling}
        object.__setattr__(self, "twins", twins)  # not submodules: self.vae holds the one in use
        self.vae = twins[self.fixed or ConvSpelling.TAPS]
        self.scaling = LatentScaling(vae)
        f, h, w = latent_shape
        self.input_specs = (TensorSpec("latents", (1, int(vae.config.z_dim), f, h, w)),)

    def spelling(self, ops, fmt: str | None) -> ConvSpelling:
        return self.fixed or (ConvSpelling.CONV3D if fmt == "onnx" else ConvSpelling.TAPS)

    @contextlib.contextmanager
    def spelled(self, ops, fmt: str | None) -> Iterator[None]:
        """The decoder with format `fmt`'s conv spelling while the exporter traces it."""
        before, self.vae = self.vae, self.twins[self.spelling(ops, fmt)]
        try:
            with super().spelled(ops, fmt):
                yield
        finally:
            self.vae = before

    def forward(self, latents: torch.Tensor) -> tuple[torch.Tensor]:
        video = self.vae.decode(self.scaling(latents), return_dict=False)[0]  # (1, 3, N, H, W)
        return (to_frames(video),)


def _cache_size(vae: nn.Module) -> int:
    """The length of diffusers' feat_cache list: one slot per causal conv of the decoder."""
    return int(vae._cached_conv_counts["decoder"])


def _run_decoder(vae: nn.Module, x: torch.Tensor, cache: list, first: bool) -> torch.Tensor:
    """One un-scaled latent frame through post_quant_conv and the decoder with `cache` (diffusers'
    feat_cache list, updated in place), clamped and post-processed as decode does."""
    from diffusers.models.autoencoders.autoencoder_kl_wan import unpatchify

    out = vae.decoder(vae.post_quant_conv(x), feat_cache=cache, feat_idx=[0], first_chunk=first)
    if vae.config.patch_size is not None:
        out = unpatchify(out, patch_size=vae.config.patch_size)
    return to_frames(torch.clamp(out, min=-1.0, max=1.0))


@torch.no_grad()
def cache_shapes(vae: nn.Module, latent_hw: tuple[int, int]) -> dict[int, tuple[int, ...]]:
    """The steady cache of every causal conv that keeps one: slot in feat_cache -> (1, C, 2, H, W),
    found by decoding two zero latent frames (from the second frame on, every cache holds 2)."""
    cache: list = [None] * _cache_size(vae)
    x = torch.zeros(1, int(vae.config.z_dim), 1, *latent_hw)
    _run_decoder(vae, x, cache, first=True)
    _run_decoder(vae, x, cache, first=False)
    return {i: tuple(c.shape) for i, c in enumerate(cache) if isinstance(c, torch.Tensor)}


class WanVaeDecoderChunk(Exportable):
    """One latent frame of AutoencoderKLWan's causal decode with the cache as inputs and outputs.

    first: latent (1, z, 1, h, w) -> frames (1, 1, H, W, 3), next_cache_0..K (2 frames each, zeros
    in front where diffusers keeps fewer, zeros for a temporal upsampler's "Rep" mark);
    otherwise: latent, cache_0..K -> frames (1, 4, H, W, 3), next_cache_0..K.
    Runs diffusers' own decoder modules with a feat_cache list built from the inputs."""

    def __init__(self, vae: nn.Module, latent_hw: tuple[int, int], first: bool,
                 convs: ConvSpelling = ConvSpelling.TAPS) -> None:
        super().__init__()
        self.vae = spelled(vae, convs)
        self.scaling = LatentScaling(vae)
        self.first = first
        self.shapes = cache_shapes(self.vae, latent_hw)
        latent = TensorSpec("latent", (1, int(vae.config.z_dim), 1, *latent_hw))
        caches = tuple(TensorSpec(f"cache_{k}", s) for k, s in enumerate(self.shapes.values()))
        self.input_specs = (latent,) if first else (latent, *caches)
        self.output_names = ("frames", *(f"next_cache_{k}" for k in range(len(self.shapes))))

    def forward(self, latent: torch.Tensor, *caches: torch.Tensor) -> tuple[torch.Tensor, ...]:
        cache: list = [None] * _cache_size(self.vae)
        if not self.first:
            for slot, c in zip(self.shapes, caches, strict=True):
                cache[slot] = c
        frames = _run_decoder(self.vae, self.scaling(latent), cache, self.first)  # (1, 1 or 4, H, W, 3)
        out = []
        for slot, shape in self.shapes.items():
            c = cache[slot]
            if not isinstance(c, torch.Tensor):  # a temporal upsampler's "Rep": nothing seen yet
                c = torch.zeros(shape)
            if c.shape[2] < CACHE_FRAMES:  # (1, C, 1, H, W): the older frame is zero padding
                c = torch.cat([torch.zeros_like(c), c], dim=2)  # (1, C, 2, H, W)
            out.append(c)
        return (frames, *out)


ChunkFn = Callable[..., Sequence[np.ndarray]]  # numpy in, numpy out (any runtime)


def decode_chunks(first: ChunkFn, chunk: ChunkFn, latents: np.ndarray) -> np.ndarray:
    """Chain the chunk decoders over latents (1, z, F, h, w): frames (1, N, H, W, 3) float32."""
    out = first(np.ascontiguousarray(latents[:, :, :1]))
    frames, caches = [out[0]], list(out[1:])
    for i in range(1, latents.shape[2]):
        out = chunk(np.ascontiguousarray(latents[:, :, i:i + 1]), *caches)
        frames.append(out[0])
        caches = list(out[1:])
    return np.concatenate(frames, axis=1).astype(np.float32)


def video_frames(latent_frames: int, temporal_scale: int = 4) -> int:
    """Video frames a causal Wan VAE decodes from `latent_frames`: the first alone, then groups."""
    return (latent_frames - 1) * temporal_scale + 1
