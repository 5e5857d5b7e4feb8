"""What every exportable model wrapper provides: static input specs and seeded example inputs.

All exporters (ONNX, Core ML, ExecuTorch) and the validator read shapes from here, one source.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..methods.ops import MergeOps, using_ops


@dataclass(frozen=True)
class TensorSpec:
    """A named static-shape tensor. dtype is a torch dtype name: 'float32', 'int64', ..."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    # For integer inputs: values are drawn from [low, high) when seeding example inputs.
    low: int = 0
    high: int = 2

    def example(self, generator: torch.Generator) -> torch.Tensor:
        dt = getattr(torch, self.dtype)
        if dt.is_floating_point:
            return torch.randn(self.shape, generator=generator, dtype=dt)
        return torch.randint(self.low, self.high, self.shape, generator=generator, dtype=dt)


class Exportable(nn.Module):
    """Base for wrappers that export: fixed input specs, named outputs, tensors in and out.

    Subclasses set `input_specs` and `output_names` and implement forward(*inputs) returning a
    tuple of tensors in `output_names` order.
    """

    input_specs: tuple[TensorSpec, ...] = ()
    output_names: tuple[str, ...] = ()
    # Weights in a file beside the artifact (ONNX external data, ExecuTorch .ptd) so runtimes can
    # map them instead of copying: set by the streamed parts of a split export (video_parts.py).
    external_weights: bool = False
    # The ExecuTorch backend this part takes whatever --backend says (None: --backend's): a part the
    # XNNPACK delegate lowers but cannot run (WanPipeline's UMT5 encoder) says "portable".
    executorch_backend: str | None = None

    def example_inputs(self, seed: int = 0) -> tuple[torch.Tensor, ...]:
        gen = torch.Generator().manual_seed(seed)
        return tuple(spec.example(gen) for spec in self.input_specs)

    def spelling(self, ops: MergeOps, fmt: str | None) -> object:
        """What, beyond `ops`, sets the graph traced for format `fmt` (None: none in particular):
        formats with equal values share one trace. Most models: nothing (None)."""
        return None

    def spelled(self, ops: MergeOps, fmt: str | None) -> contextlib.AbstractContextManager:
        """The model as the graph traced with merge spelling `ops` for format `fmt` computes it, inside
        the block (the exporters trace in it, with `ops.for_export()`): every patched module holds
        `ops` (graphs/methods/ops.py using_ops); a UNet also re-patches its tomesd blocks per format
        (graphs/models/sd_unet.py)."""
        return using_ops(self, ops)


def seeded(build: Callable[[], nn.Module], seed: int = 0) -> nn.Module:
    """`build()` in eval mode with torch's generator seeded (every machine builds the same random
    weights of a built-in); the caller's generator state is restored afterwards."""
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        return build().eval()
    finally:
        torch.random.set_rng_state(state)


@dataclass
class ModelBundle:
    """A built-in or local model, ready to export: one or more parts, each one artifact per format.

    parts: artifact stem -> wrapper ('model' for single-part models, so DIR gets model.onnx ...).
    extra_files: files copied into the export folder as they are (tokenizer files), name -> source.
    generated_files: files written into the export folder, name -> text (the Hugging Face
        config.json and preprocessor_config.json of a single-model export).
    manifest: extra entries for manifest.json (pipeline description, merge schedule, ...).
    real_inputs: optional stem -> callable returning real (not random) inputs for validation.
    int8_companions: parts that an fp32 export also writes with int8 weights beside the fp32 file,
        in formats whose exporter can (ONNX: `<part>.int8.onnx`, "companion_of" the fp32 file): the
        browser app downloads video-dit-tiny's text encoder first (91 of its 113 MB in fp32) and
        prefers the int8 one (docs/web_phone.md); the other runtimes keep the fp32 reference.
        Validation checks it against the fp32 pipeline (runtime/text_int8.py).
    app_contract: the export also writes the contract the apps' ports check themselves against
        (test_vectors/contract.json and its replay file, runtime/contract.py): the built-in
        text-to-video model, whose sampler the apps reimplement.
    splitter: how the bundle splits into ordered parts for block streaming (`--split KIND`):
        (bundle, kind) -> the bundle with its parts added; None: the video denoisers' split.
    references: modules whose eager test vectors and manifest entry are written but that are not
        exported: a split Wan transformer's monolithic variants, the reference its chain of parts
        is checked against without lowering the whole model (graphs/models/wan_parts.py).
    """

    name: str
    parts: dict[str, Exportable]
    extra_files: dict[str, Path] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)
    real_inputs: dict[str, Callable[[], tuple[torch.Tensor, ...]]] = field(default_factory=dict)
    generated_files: dict[str, str] = field(default_factory=dict)
    int8_companions: tuple[str, ...] = ()
    app_contract: bool = False
    splitter: Callable[[ModelBundle, str], ModelBundle] | None = None
    references: dict[str, Exportable] = field(default_factory=dict)

    def write_files(self, folder: Path) -> list[str]:
        """Copy `extra_files` and write `generated_files` into `folder`; returns their names."""
        for name, src in self.extra_files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)  # e.g. a pipeline's tokenizer/
            shutil.copy2(src, folder / name)
        for name, text in self.generated_files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)  # e.g. diffusers' unet/config.json
            (folder / name).write_text(text)
        return [*self.extra_files, *self.generated_files]
