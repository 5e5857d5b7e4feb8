"""A WanPipeline export folder (`tomobile export PIPELINE_DIR`, graphs/models/wan_pipeline.py) as
the three callables of runtime/wan_generate.py, on ONNX Runtime, ExecuTorch or Core AI (or eager
PyTorch, rebuilt from the source folder: runtime/wan_eager.py).

The manifest's `pipeline` entry names the parts, the text length, the latent shape and the
defaults (guidance, steps); the folder holds the tokenizer (tokenizer/) and the scheduler's config
(scheduler/scheduler_config.json). Every artifact is checked against its sha256 before it loads,
the transformer variants load when first used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..graphs.errors import InputError
from .flow_schedule import FlowSchedule, flow_schedule
from .manifest import RUNTIME_FORMATS, ManifestError, inside, parse_manifest_text
from .manifest_reader import Manifest, read_manifest
from .video import RuntimeKind, checked_runner
from .wan_eager import Runner, eager_parts
from .wan_generate import WanRun
from .wan_prompt import tokenize

KIND = "wan-pipeline"


class LatentsError(InputError):
    """Starting latents of the wrong shape or dtype: one line, exit code 2."""


@dataclass(frozen=True)
class WanExport:
    """What a run needs from a WanPipeline export folder's manifest (decoded once, here)."""

    manifest: Manifest
    scheduler: dict  # scheduler_config.json
    guidance: float
    steps: int
    text_tokens: int
    latent_shape: tuple[int, ...]  # (1, z, F, h, w)
    tdtm: bool  # has the TDTM transformer

    @property
    def folder(self) -> Path:
        return self.manifest.folder

    def schedule(self, steps: int) -> FlowSchedule:
        return flow_schedule(self.scheduler, steps)


def is_wan_export(folder: Path) -> bool:
    """Whether `folder` holds a WanPipeline export (a manifest whose pipeline kind says so)."""
    try:
        pipeline = read_manifest(folder).extra.get("pipeline")
    except (ManifestError, OSError):
        return False
    return isinstance(pipeline, dict) and pipeline.get("kind") == KIND


def wan_export(folder: Path) -> WanExport:
    """The run settings of a WanPipeline export folder; a one-line ManifestError where it is not one."""
    manifest = read_manifest(folder)
    spec = manifest.extra.get("pipeline")
    if not isinstance(spec, dict) or spec.get("kind") != KIND:
        raise ManifestError(f"{folder} holds no WanPipeline export; run `tomobile export PIPELINE_DIR --size HxW "
                            "--frames N --out DIR` on a diffusers WanPipeline folder")
    try:
        scheduler = parse_manifest_text(inside(folder, spec["scheduler"]["config"]).read_text())
        return WanExport(manifest, scheduler, float(spec["guidance"]), int(spec["steps"]), int(spec["text_tokens"]),
                         tuple(int(n) for n in spec["latent_shape"]), "transformer_tdtm" in spec["parts"])
    except (KeyError, TypeError, ValueError, OSError) as err:
        raise ManifestError(f"{folder}/manifest.json: its pipeline entry is damaged ({type(err).__name__}: {err}); "
                            "export again") from None


def check_latents(latents: np.ndarray, shape: tuple[int, ...], where: str) -> np.ndarray:
    """Starting latents must be float32 of the export's latent shape (no silent cast or reshape)."""
    if latents.dtype != np.float32 or tuple(latents.shape) != tuple(shape):
        raise LatentsError(f"{where} holds {latents.dtype} {tuple(latents.shape)}; this export takes float32 latents "
                           f"of shape {tuple(shape)}")
    if not np.all(np.isfinite(latents)):
        raise LatentsError(f"{where} holds NaN or inf values; the latents must be finite")
    return latents


def load_latents(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """`--latents FILE.npy`: a float32 array of the export's latent shape."""
    try:
        latents = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise LatentsError(f"--latents {path} is not a readable .npy array: {str(err).splitlines()[0]}") from None
    return check_latents(latents, shape, f"--latents {path}")


def wan_run(export: WanExport, kind: RuntimeKind, merged: bool) -> WanRun:
    """The three callables of `export` on runtime `kind`, every part loaded now (the TDTM
    transformer too where `merged`), so a missing or damaged one stops the run before it starts.
    Eager rebuilds the parts from the source folder the manifest names (runtime/wan_eager.py)."""
    folder = export.folder
    if merged and not export.tdtm:
        raise InputError(f"{folder} has no TDTM transformer; export the pipeline with --merge tdtm to use --tdtm-steps")
    needed = ["text_encoder", "transformer", *(["transformer_tdtm"] if merged else []), "vae_decoder"]
    tokenizer = _tokenizer(folder / "tokenizer")
    if kind is RuntimeKind.EAGER:
        runners = eager_parts(folder, export.manifest.extra["pipeline"], export.manifest.extra.get("merge", {}), needed)
    else:
        runners = _artifact_runners(export, kind, needed)

    def encode(prompt: str) -> np.ndarray:
        return runners["text_encoder"](*tokenize(tokenizer, prompt, export.text_tokens))[0].astype(np.float32)

    def denoise(x: np.ndarray, t: float, states: np.ndarray, tdtm: bool) -> np.ndarray:
        run = runners["transformer_tdtm" if tdtm else "transformer"]
        return run(np.ascontiguousarray(x), np.array([t], np.float32), states)[0]

    return WanRun(encode, denoise, lambda latents: runners["vae_decoder"](latents)[0])


def _artifact_runners(export: WanExport, kind: RuntimeKind, needed: list[str]) -> dict[str, Runner]:
    """The exported files of `needed` on `kind`, each checked against its sha256 and loaded."""
    if kind.value not in RUNTIME_FORMATS:
        raise InputError(f"a WanPipeline export runs on eager, {', '.join(RUNTIME_FORMATS)}, not {kind.value}")
    fmt, folder = RUNTIME_FORMATS[kind.value], export.folder
    artifacts = {a.part: a for a in export.manifest.artifacts if a.format == fmt and a.companion_of is None}
    missing = [p for p in needed if p not in artifacts]
    if missing:
        raise FileNotFoundError(f"{folder} has no {fmt} {', '.join(missing)}; export the pipeline with --format {fmt}")
    return {p: checked_runner(folder, artifacts[p], kind) for p in needed}


def _tokenizer(folder: Path):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder))
    except Exception as err:  # transformers raises many types for a damaged tokenizer folder
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ManifestError(f"the tokenizer files in {folder} cannot be loaded: {first}; export again") from None
