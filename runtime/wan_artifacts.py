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
from ..graphs.models.video_transformers import MERGED, PLAIN
from .flow_schedule import FlowSchedule, flow_schedule
from .manifest import RUNTIME_FORMATS, ManifestError, inside, parse_manifest_text
from .manifest_reader import Manifest, read_manifest
from .streaming import StreamError
from .video import RuntimeKind, checked_runner
from .wan_eager import Runner, eager_parts
from .wan_generate import WanRun
from .wan_prompt import tokenize
from .wan_stream import PartLoads, StreamedRun, StreamSettings, streamed_transformers, transient_runner

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


def wan_run(export: WanExport, kind: RuntimeKind, merged: bool, stream: StreamSettings | None = None) -> WanRun:
    """The three callables of `export` on runtime `kind`, every part loaded now (the TDTM
    transformer too where `merged`), so a missing or damaged one stops the run before it starts.
    Eager rebuilds the parts from the source folder the manifest names (runtime/wan_eager.py); a
    split export streams the transformer's parts (runtime/wan_stream.py), under `stream`'s budget
    with the text encoder and the VAE decoder loaded per call, or all resident without `stream`."""
    folder = export.folder
    if merged and not export.tdtm:
        raise InputError(f"{folder} has no TDTM transformer; export the pipeline with --merge tdtm to use --tdtm-steps")
    needed = ["text_encoder", PLAIN, *([MERGED] if merged else []), "vae_decoder"]
    tokenizer = load_tokenizer(folder / "tokenizer")
    streamed = None
    if kind is RuntimeKind.EAGER:
        if stream is not None:
            raise StreamError("--stream runs exported parts: use --runtime onnxruntime or executorch, not eager")
        runners = eager_parts(folder, export.manifest.extra["pipeline"], export.manifest.extra.get("merge", {}), needed)
    else:
        runners, streamed = _artifact_runners(export, kind, needed, stream)

    def encode(prompt: str) -> np.ndarray:
        return runners["text_encoder"](*tokenize(tokenizer, prompt, export.text_tokens))[0].astype(np.float32)

    def denoise(x: np.ndarray, t: float, states: np.ndarray, tdtm: bool) -> np.ndarray:
        run = runners[MERGED if tdtm else PLAIN]
        return run(np.ascontiguousarray(x), np.array([t], np.float32), states)[0]

    def decode(latents: np.ndarray) -> np.ndarray:
        if streamed is not None and stream is not None:
            streamed.streamer.release_all()  # the decoder loads with no part loaded
        return runners["vae_decoder"](latents)[0]

    return WanRun(encode, denoise, decode, streamed)


def _artifact_runners(export: WanExport, kind: RuntimeKind, needed: list[str],
                      stream: StreamSettings | None) -> tuple[dict[str, Runner], StreamedRun | None]:
    """The exported files of `needed` on `kind`, each checked against its sha256 and loaded; the
    transformer from its split parts where the export has them (always with `stream`)."""
    if kind.value not in RUNTIME_FORMATS:
        raise InputError(f"a WanPipeline export runs on eager, {', '.join(RUNTIME_FORMATS)}, not {kind.value}")
    fmt, folder = RUNTIME_FORMATS[kind.value], export.folder
    artifacts = {a.part: a for a in export.manifest.artifacts if a.format == fmt and a.companion_of is None}
    transformers = [p for p in needed if p in (PLAIN, MERGED)]
    split = export.manifest.split is not None and (stream is not None or any(p not in artifacts for p in transformers))
    if stream is not None and export.manifest.split is None:
        raise StreamError(f"{folder} was exported without --split blocks; --stream needs `tomobile export PIPELINE_DIR "
                          "--size HxW --frames N --split blocks --out DIR`")
    missing = [p for p in needed if p not in artifacts and not (split and p in transformers)]
    if missing:
        raise FileNotFoundError(f"{folder} has no {fmt} {', '.join(missing)}; export the pipeline with --format {fmt}")
    if not split:
        return {p: checked_runner(folder, artifacts[p], kind) for p in needed}, None
    streamer, runners = streamed_transformers(export.manifest, kind, transformers, stream or StreamSettings())
    loads = PartLoads()
    for p in (p for p in needed if p not in transformers):
        runners[p] = (transient_runner(folder, artifacts[p], kind, stream.budget, loads) if stream is not None
                      else checked_runner(folder, artifacts[p], kind))
    return runners, StreamedRun(streamer, loads)


def load_tokenizer(folder: Path):
    """The export's tokenizer (transformers' AutoTokenizer on tokenizer/), or a one-line ManifestError."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder))
    except Exception as err:  # transformers raises many types for a damaged tokenizer folder
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ManifestError(f"the tokenizer files in {folder} cannot be loaded: {first}; export again") from None
