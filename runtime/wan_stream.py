"""A WanPipeline export with `--split blocks` (the transformer as ordered parts, graphs/models/wan_parts.py),
run part by part: On-device Sora's CI-DL for the whole pipeline, `generate --stream --memory-budget B`.

    text encoder   loaded for a prompt, run, released (the negative prompt loads it again)
    transformer    its parts streamed by runtime/streaming.py's BlockStreamer under B (parts stay
                   resident while B allows, the others load for their turn, the next one in the
                   background with prefetch)
    VAE decoder    loaded once sampling is done and every part is released, run, released

So at no time are more than B bytes of model files loaded: the text encoder, the parts and the
decoder each must fit under B alone (a one-line StreamError says which does not). Without
--stream a split export runs the same way with every part resident (budget UNLIMITED).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .manifest_reader import Artifact, Manifest
from .memory import MemoryPeak, MemoryProbe, malloc_trim
from .streaming import UNLIMITED, BlockStreamer, StreamError, mb, open_split
from .video import RuntimeKind, checked_runner

Runner = Callable[..., list[np.ndarray]]


@dataclass(frozen=True)
class StreamSettings:
    budget: int = UNLIMITED
    prefetch: bool = True


@dataclass
class PartLoads:
    """What the text encoder and the VAE decoder cost per load (the transformer's parts: the streamer's stats)."""

    loads: dict[str, int] = field(default_factory=dict)  # part -> times loaded
    peaks: dict[str, MemoryPeak] = field(default_factory=dict)  # part -> its highest load-and-run peak
    sizes: dict[str, int] = field(default_factory=dict)  # part -> bytes on disk


def transient_runner(folder: Path, artifact: Artifact, kind: RuntimeKind, budget: int, loads: PartLoads) -> Runner:
    """`artifact` loaded for each call and released after it, refused up front when it alone exceeds `budget`."""
    size = (artifact.file.bytes or 0) + ((artifact.weights.bytes or 0) if artifact.weights is not None else 0)
    if size > budget:
        raise StreamError(f"the {artifact.part} ({mb(size)}) does not fit under the memory budget {mb(budget)}; give "
                          f"at least {mb(size)}")
    loads.sizes[artifact.part] = size
    probe = MemoryProbe()

    def run(*arrays: np.ndarray) -> list[np.ndarray]:
        probe.start_window()
        runner = checked_runner(folder, artifact, kind)
        try:
            outs = [np.asarray(o) for o in runner(*arrays)]
        finally:
            del runner
            malloc_trim()
        peak = probe.end_window()
        loads.loads[artifact.part] = loads.loads.get(artifact.part, 0) + 1
        if peak.rss > loads.peaks.get(artifact.part, MemoryPeak()).rss:
            loads.peaks[artifact.part] = peak
        return outs

    return run


@dataclass
class StreamedRun:
    """A split export's run: the streamer serving the transformer's parts, and what the text encoder
    and the VAE decoder cost (with --stream: loaded per call)."""

    streamer: BlockStreamer
    loads: PartLoads


def streamed_transformers(manifest: Manifest, kind: RuntimeKind, variants: list[str],
                          settings: StreamSettings) -> tuple[BlockStreamer, dict[str, Runner]]:
    """The split transformer variants of the export as runners (hidden_states, timestep,
    encoder_hidden_states) -> [out_hidden_states], all served by one BlockStreamer."""
    split = open_split(manifest.folder, kind.value, variants=variants)
    streamer = BlockStreamer(split, settings.budget, settings.prefetch and settings.budget < UNLIMITED)
    names = {v: tuple(i.name for i in manifest.parts[v].inputs) for v in variants}

    def runner(variant: str) -> Runner:
        return lambda *arrays: [streamer(variant, dict(zip(names[variant], arrays, strict=True)))]

    return streamer, {v: runner(v) for v in variants}


def format_loads(loads: PartLoads) -> str:
    """One line per part loaded per call: loads, size, peak RSS of the process while it was loaded."""
    return "\n".join(f"{part}: {loads.loads.get(part, 0)} loads of {mb(size)} (loaded for its call, then released), "
                     f"peak RSS {mb(loads.peaks[part].rss) if part in loads.peaks else '-'}"
                     for part, size in loads.sizes.items())

