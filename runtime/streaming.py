"""Block streaming (On-device Sora's CI-DL): run a split denoiser part by part under a memory budget.

A split export (`tomobile export MODEL --split blocks`) lists the denoiser's parts in order per
variant. `BlockStreamer` runs one variant's parts in order for every denoiser call. Parts stay
resident while the budget allows (a fixed set chosen once per variant, `plan_pinned`); the others
are loaded for their turn and released after it. While part i runs, the next part that is not
resident is loaded on a background thread. The sum of the sizes of the parts loaded or loading
never exceeds the budget; a budget below the largest part is refused.

Weights stay file-backed where the runtime allows: ONNX Runtime maps the parts' external data
(`session.disable_prepacking=1`, no CPU arena). Mapping them again every step costs page faults;
a background load takes them on the loader thread (MADV_POPULATE_READ), a load on the compute
thread leaves them to the run (cheaper there: fault-around). ExecuTorch maps the .ptd and XNNPACK
packs the weights into anonymous memory at load_method (about 1x their size). After a release,
malloc_trim(0) hands the freed heap back to the OS.

ONNX Runtime releases the GIL while it runs a part, so the next part loads meanwhile. ExecuTorch's
Python bindings hold the GIL in load_method and execute: a background load waits for the running
part and then holds up the compute thread. The hidden time each step reports is measured
(runtime/overlap.py), so it says which happened.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..graphs.errors import TomobileError
from ..graphs.models.video_parts import SPLIT_MODELS
from ..graphs.numbers import NumberError, parse_size
from .manifest import RUNTIME_FORMATS, ManifestError, sha256_path
from .manifest_reader import FileRecord, Manifest, SplitPart, TensorEntry, read_manifest
from .memory import MemoryPeak, MemoryProbe, malloc_trim, populate_mappings
from .overlap import Heartbeat, hidden_seconds
from .runners import Runner
from .runners.coreai import CoreAIRunner
from .runners.executorch import ExecuTorchRunner
from .runners.onnxruntime import OnnxRunner
from .runners.signature import Signature, signature_mismatch

log = logging.getLogger(__name__)

UNLIMITED = 1 << 62  # a budget that holds every part


class StreamError(TomobileError, ValueError):
    """A split export that cannot be streamed as asked: one line for the CLI, exit code 2."""


@dataclass(frozen=True)
class PartFile:
    name: str
    path: Path
    weights: Path | None  # ONNX external data / ExecuTorch .ptd
    size: int  # bytes on disk, model file and weights: what the budget counts
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    float16: bool = False  # ExecuTorch fp16 parts take and return float16
    # The manifest's {name, shape, dtype} per input and output: a loaded file is checked against them.
    input_specs: tuple[TensorEntry, ...] = field(default=(), compare=False, hash=False)
    output_specs: tuple[TensorEntry, ...] = field(default=(), compare=False, hash=False)
    method: str | None = None  # its method (function) in a .pte (asset) shared with the parts of the same weights

    def check_io(self, got: Signature) -> None:
        """StreamError when the loaded program's (inputs, outputs) are not the manifest's: a file from
        another model whose sha256 was made to match would otherwise fail inside the runtime."""
        if not self.input_specs:
            return
        problem = signature_mismatch(got, self.input_specs, self.output_specs, "float16" if self.float16 else "float32")
        if problem:
            raise StreamError(f"part {self.name}: {self.path.name} has {problem} (a file of another model or "
                              "export); export the folder again")


@dataclass
class SplitModel:
    folder: Path
    runtime: str
    parts: dict[str, PartFile]
    sequences: dict[str, list[str]]  # denoiser variant -> part names in order

    def sequence_bytes(self, variant: str) -> int:
        return sum(self.parts[n].size for n in dict.fromkeys(self.sequences[variant]))

    def largest(self) -> PartFile:
        return max(self.parts.values(), key=lambda p: p.size)


def mb(n: float) -> str:
    """Bytes for people: '184.3 MB', '96.0 KB', '40 B'."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def parse_bytes(text: str) -> int:
    """'64MB' -> 64_000_000: graphs/numbers.py's size (units B, KB, MB, GB and KiB, MiB, GiB; a
    finite positive byte count, ASCII digits, no exponent)."""
    try:
        return parse_size(text, "memory budget")
    except NumberError as err:
        raise StreamError(str(err)) from None


def open_split(folder: Path, runtime: str, verify: bool = True, variants: list[str] | None = None) -> SplitModel:
    """The split parts of an export folder for `runtime`, every file checked against its sha256.
    With `variants`, only those denoiser variants are kept and only their parts checked: a damaged
    part of a variant the run does not use is ignored, as the unsplit artifacts' are."""
    try:
        manifest = read_manifest(folder)
    except ManifestError as err:
        raise StreamError(str(err)) from None
    split = manifest.split
    if split is None or not split.parts:
        raise StreamError(f"{folder} was exported without --split blocks; --stream needs {split_command(manifest, folder)}")
    fmt = RUNTIME_FORMATS[runtime]
    parts = {}
    for entry in split.parts:
        rec = entry.files.get(fmt)
        if rec is None:
            raise StreamError(f"{folder} has no {fmt} parts (part {entry.name}); export with --format {fmt}")
        weights = folder / rec.weights.path if rec.weights is not None else None
        parts[entry.name] = PartFile(entry.name, folder / rec.file.path, weights, rec.total_bytes,
                                     tuple(i.name for i in entry.inputs), tuple(o.name for o in entry.outputs),
                                     _is_fp16(manifest, entry.name, fmt), entry.inputs, entry.outputs,
                                     rec.entry_name)
    sequences = {k: list(v) for k, v in split.sequences.items()}
    if variants is not None:
        missing = [v for v in variants if v not in sequences]
        if missing:
            raise StreamError(f"{folder} has no split parts for {missing[0]}; its variants: {', '.join(sequences)}")
        sequences = {k: sequences[k] for k in variants}
    used = {n for seq in sequences.values() for n in seq}
    if verify:
        _verify_files(folder, split.parts, fmt, used)
    return SplitModel(folder, runtime, {n: p for n, p in parts.items() if n in used}, sequences)


def split_command(manifest: Manifest, folder: Path) -> str:
    """A `tomobile export ... --split blocks` that works for this folder's model: --split splits the
    video denoisers only (SPLIT_MODELS); any other model gets one of those as the example."""
    if manifest.model in SPLIT_MODELS:
        return f"`tomobile export {manifest.model} --split blocks --out {folder}`"
    return (f"a split video denoiser, which {manifest.model or 'this model'} is not ({', '.join(SPLIT_MODELS)}), "
            "e.g. `tomobile export video-dit-micro --split blocks --out DIR`")


def _is_fp16(manifest: Manifest, part: str, fmt: str) -> bool:
    return any(a.part == part and a.format == fmt and a.float_io == "float16" for a in manifest.artifacts)


def _verify_files(folder: Path, entries: tuple[SplitPart, ...], fmt: str, used: set[str]) -> None:
    """Every file of the `used` parts present and equal to its sha256; a swapped file is named for
    what it is (by the files of every part)."""
    owners: dict[str, list[str]] = {}  # several files can hold the same bytes (variants sharing weights)
    files: list[tuple[str, FileRecord]] = []
    for entry in entries:
        rec = entry.files[fmt]
        for f in (rec.file, rec.weights):
            if f is not None:
                paths = owners.setdefault(f.sha256, [])
                if f.path not in paths:  # a block's parts list their one shared file each
                    paths.append(f.path)
                if entry.name in used:
                    files.append((entry.name, f))
    computed: dict[str, str] = {}  # a file several parts share (export/shared.py) is hashed once, each record checked
    for name, f in files:
        path = folder / f.path
        if f.path not in computed:
            if not path.exists():  # a file, or a folder (a Core AI .aimodel asset)
                raise StreamError(f"part {name}: {path} is missing; export the folder again")
            computed[f.path] = sha256_path(path)
        digest = computed[f.path]
        if digest == f.sha256:
            continue
        others = [p for p in owners.get(digest, []) if p != f.path]  # not this file under an edited record
        if others:
            held = " or ".join(others)
            raise StreamError(f"part {name}: {path} holds {held} (a different part), not the part "
                              "its manifest lists; export the folder again")
        raise StreamError(f"part {name}: {path} does not match its sha256 in the manifest (altered, or from "
                          "another export); export the folder again")


def load_part(part: PartFile, runtime: str, threads: int | None = None, background: bool = False) -> Runner:
    """The part's runner, its inputs and outputs checked against the manifest's. ONNX Runtime
    sessions get one thread pool per part, not spinning (it would steal the next part's cores), no
    prepacking and no arena: the weights stay in the mapped file and freed activations go back at
    once (a lower peak). `background`: loaded on the prefetch thread, which also faults ONNX
    Runtime's weights in. A Core AI part's `close` releases the compiled model at once."""
    if runtime == "coreai":
        return CoreAIRunner(part.path, part.method)
    if runtime == "onnxruntime":
        onnx = OnnxRunner(part.path, threads=threads, spinning=False, config={"session.disable_prepacking": "1"},
                          arena=False)
        part.check_io(onnx.signature())
        if background and part.weights is not None:
            populate_mappings(part.weights)
        return onnx
    runner = ExecuTorchRunner(part.path, part.weights, part.method)
    part.check_io(runner.signature())
    return runner


def plan_pinned(sizes: dict[str, int], budget: int, prefetch: bool) -> set[str]:
    """Parts (name -> bytes, in run order) that stay resident: taken in order while the pinned
    bytes plus room for the streamed ones (the largest one, or two with prefetch) fit the budget."""
    if sum(sizes.values()) <= budget:
        return set(sizes)
    room = 2 if prefetch else 1
    pinned: set[str] = set()
    for name, size in sizes.items():
        rest = sorted((s for n, s in sizes.items() if n not in pinned and n != name), reverse=True)
        if sum(sizes[n] for n in pinned) + size + sum(rest[:room]) <= budget:
            pinned.add(name)
    return pinned


@dataclass
class CallStats:
    """One denoiser call (one sampling step) through the streamer."""

    variant: str
    parts_run: int = 0
    parts_loaded: int = 0
    load_s: float = 0.0  # time spent loading parts, on any thread
    waited_s: float = 0.0  # time the compute thread waited for a load (or loaded itself)
    hidden_s: float = 0.0  # load time that overlapped a run which released the GIL
    latency_s: float = 0.0
    resident_max: int = 0  # highest sum of loaded + loading part sizes, bytes
    peak: MemoryPeak = field(default_factory=MemoryPeak)


class BlockStreamer:
    """Runs a split model's parts under `budget` bytes; call it once per denoiser call."""

    def __init__(self, model: SplitModel, budget: int, prefetch: bool = True, threads: int | None = None,
                 probe: MemoryProbe | None = None, loader=None) -> None:
        largest = model.largest()
        if budget < largest.size:
            raise StreamError(f"memory budget {mb(budget)} is below the largest part, {largest.name} "
                              f"({mb(largest.size)}); give at least {mb(largest.size)}")
        self.model, self.budget, self.prefetch = model, budget, prefetch
        # loader(part, background) -> Runner; background: called on the prefetch thread
        self.loader = loader or (lambda part, background: load_part(part, model.runtime, threads, background))
        self.probe = probe or MemoryProbe()
        self.loaded: dict[str, Runner] = {}
        self.loading: dict[str, Future] = {}
        self.stats: list[CallStats] = []
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="part-loader") if prefetch else None
        self.heartbeat = Heartbeat() if prefetch else None
        self._pinned: dict[str, set[str]] = {}

    def pinned(self, variant: str) -> set[str]:
        if variant not in self._pinned:
            seq = dict.fromkeys(self.model.sequences[variant])
            self._pinned[variant] = plan_pinned({n: self.model.parts[n].size for n in seq}, self.budget, self.prefetch)
        return self._pinned[variant]

    def resident_bytes(self) -> int:
        return sum(self.model.parts[n].size for n in (*self.loaded, *self.loading))

    def __call__(self, variant: str, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """Run `variant`'s parts in order on the named inputs; returns the last part's first output."""
        if variant not in self.model.sequences:
            raise StreamError(f"variant {variant} has no parts; split variants: {', '.join(self.model.sequences)}")
        seq, pinned = self.model.sequences[variant], self.pinned(variant)
        stats = CallStats(variant)
        self.probe.start_window()
        start = time.perf_counter()
        for name in [n for n in (*self.loaded, *self.loading) if n not in seq]:
            self._release(name, stats)  # another variant's parts
        env = dict(inputs)
        for i, name in enumerate(seq):
            part = self._acquire(name, stats)
            if self._pool is not None:
                self._prefetch(self._next_missing(seq, i), stats)
            spec = self.model.parts[name]
            self.probe.sample()
            outs = part.run([_cast(env[n], spec.float16) for n in spec.inputs])
            env.update(zip(spec.outputs, outs, strict=True))
            self.probe.sample()
            stats.parts_run += 1
            if name not in pinned:
                self._release(name, stats)
        stats.latency_s = time.perf_counter() - start
        stats.peak = self.probe.end_window()
        self.stats.append(stats)
        return np.asarray(env[self.model.parts[seq[-1]].outputs[0]], dtype=np.float32)

    def _next_missing(self, seq: list[str], i: int) -> str | None:
        """The next part after position i (wrapping to the next call) that is neither loaded nor loading."""
        for name in seq[i + 1:] + seq[: i + 1]:
            if name not in self.loaded and name not in self.loading:
                return name
            if name in self.loading:
                return None  # one load at a time
        return None

    def _prefetch(self, name: str | None, stats: CallStats) -> None:
        if name is None or self.resident_bytes() + self.model.parts[name].size > self.budget:
            return
        self.loading[name] = self._pool.submit(_timed, self.loader, self.model.parts[name], True)
        stats.resident_max = max(stats.resident_max, self.resident_bytes())

    def _acquire(self, name: str, stats: CallStats) -> Runner:
        if name in self.loaded:  # resident since an earlier call: it counts in this call's resident bytes too
            stats.resident_max = max(stats.resident_max, self.resident_bytes())
            return self.loaded[name]
        if name in self.loading:
            t = time.perf_counter()
            part, seconds, span = self.loading.pop(name).result()
            waited = time.perf_counter() - t
            stats.waited_s += waited
            stats.hidden_s += hidden_seconds(self.heartbeat, span, waited)
        else:
            for other in [n for n in self.loading]:  # a load we no longer need: let it finish, drop it
                self._release(other, stats)
            size = self.model.parts[name].size
            if self.resident_bytes() + size > self.budget:
                raise RuntimeError(f"part {name} ({mb(size)}) does not fit beside {mb(self.resident_bytes())} "
                                   f"resident under {mb(self.budget)}")
            part, seconds, _ = _timed(self.loader, self.model.parts[name], False)
            stats.waited_s += seconds
        self.loaded[name] = part
        stats.load_s += seconds
        stats.parts_loaded += 1
        stats.resident_max = max(stats.resident_max, self.resident_bytes())
        self.probe.sample()
        return part

    def _release(self, name: str, stats: CallStats) -> None:
        if name in self.loading:
            part, seconds, span = self.loading.pop(name).result()
            stats.load_s, stats.parts_loaded = stats.load_s + seconds, stats.parts_loaded + 1
            stats.hidden_s += hidden_seconds(self.heartbeat, span, 0.0)
        else:
            part = self.loaded.pop(name)
        self.probe.sample()
        part.close()  # the last reference: the runtime frees the part now
        del part
        malloc_trim()

    def release_all(self) -> None:
        """Release every loaded (and loading) part: what a pipeline does before its next stage loads."""
        for name in [*self.loaded, *self.loading]:
            self._release(name, CallStats(""))

    def close(self) -> None:
        self.release_all()
        if self._pool is not None:
            self._pool.shutdown()
        if self.heartbeat is not None:
            self.heartbeat.stop()


def _timed(loader, part: PartFile, background: bool) -> tuple[Runner, float, tuple[float, float]]:
    """(loaded part, seconds, (start, end) on the perf_counter clock)."""
    t = time.perf_counter()
    loaded = loader(part, background)
    end = time.perf_counter()
    return loaded, end - t, (t, end)


def _cast(x: np.ndarray, float16: bool) -> np.ndarray:
    if float16 and x.dtype == np.float32:
        return x.astype(np.float16)
    if not float16 and x.dtype == np.float16:
        return x.astype(np.float32)
    return x
