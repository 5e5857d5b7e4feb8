"""Exporters registered by format name. An unknown name is an error that lists the valid ones.

Each exporter declares which options it honours (precisions, quantize modes, ExecuTorch
backends). An option that none of the asked formats honours is refused before any work, naming
the formats that would honour it; a format that does not honour an asked option gets that
option's default, and the CLI says so in one line.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path

import torch

from ..graphs.errors import TomobileError
from ..graphs.numbers import NumberError, parse_names
from ..runtime.manifest import FORMATS

# export(get_program, part, out_path, options) -> manifest details. get_program(precision) returns a
# fresh copy of the part's torch.export ExportedProgram, which the exporter may change freely.
ExportFn = Callable[[Callable[[str], torch.export.ExportedProgram], "PartInfo", Path, "ExportOptions"], dict]
# export_group(get_programs, parts, out, options) -> {stem: details}: parts that share their weights
# written as one weights store (export/shared.py).
GroupExportFn = Callable[[dict, dict[str, "PartInfo"], Path, "ExportOptions"], dict[str, dict]]
# companion(artifact, out) -> what was quantised: the artifact written again with int8 weights.
CompanionFn = Callable[[Path, Path], str]


@dataclass(frozen=True)
class ExportOptions:
    """What the user asked for; None (or fp32) means the format's default. `for_format` gives
    the options one exporter actually receives."""

    backend: str | None = None  # ExecuTorch: xnnpack | portable (None: the exporter's first backend)
    precision: str = "fp32"  # fp32 | fp16
    # "int8": ONNX = dynamic int8 weights (onnxruntime.quantization); ExecuTorch = static PT2E int8
    # (XNNPACK quantizer, calibrated on the seeded inputs)
    quantize: str | None = None


@dataclass(frozen=True)
class PartInfo:
    stem: str
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    # Weights in a file beside the artifact (ONNX external data, ExecuTorch .ptd): streamed parts.
    external_weights: bool = False
    calibration: tuple = ()  # input tuples for static quantisation (seeded inputs)
    backend: str | None = None  # the part's own ExecuTorch backend (Exportable.executorch_backend)


# ExportOptions field -> (Exporter capability attribute, the value that asks for nothing special).
_CAPABILITY = {"precision": ("precisions", "fp32"), "quantize": ("quantize", None), "backend": ("backends", None)}


@dataclass(frozen=True)
class Exporter:
    """A format's exporter and what the pipeline asks of it, so that the pipeline never branches on
    a format's name."""

    name: str
    export: ExportFn
    precisions: tuple[str, ...]  # precisions this format honours; others fall back to fp32
    quantize: tuple[str, ...] = ()  # --quantize modes this format honours
    backends: tuple[str, ...] = ()  # --backend values this format honours; the first is the default
    float16_io: bool = False  # an fp16 graph takes and returns float16 (Core ML keeps float32 I/O)
    # Writes an fp32 artifact again with int8 weights, as a companion beside it (ModelBundle.int8_companions).
    int8_companion: CompanionFn | None = None
    export_group: GroupExportFn | None = None  # None: parts that share weights are written one by one

    @property
    def suffix(self) -> str:
        """The artifact's file suffix (.onnx, .pte, .mlpackage, .aimodel): manifest.FORMATS."""
        return FORMATS[self.name].suffix

    def float_io(self, options: ExportOptions) -> str:
        """The dtype of the float inputs and outputs of a graph exported with `options`."""
        return "float16" if self.float16_io and options.precision == "fp16" else "float32"

    def honours(self, option: str, value: str) -> bool:
        return value in getattr(self, _CAPABILITY[option][0])

    def options_for(self, options: ExportOptions) -> ExportOptions:
        """`options` with every value this format does not honour set back to its default."""
        changes = {f.name: _CAPABILITY[f.name][1] for f in fields(options)
                   if getattr(options, f.name) not in (None, _CAPABILITY[f.name][1])
                   and not self.honours(f.name, getattr(options, f.name))}
        if self.backends and (changes.get("backend", options.backend) is None):
            changes["backend"] = self.backends[0]
        return replace(options, **changes)


_EXPORTERS: dict[str, Exporter] = {}
_MODULES = ("onnx_format", "executorch_format", "coreml_format", "coreai_format")


class FormatError(TomobileError, KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; print it plainly
        return str(self.args[0])


class OptionError(TomobileError, ValueError):
    """An export option that none of the asked formats honours."""


def register_exporter(name: str, precisions: tuple[str, ...], quantize: tuple[str, ...] = (),
                      backends: tuple[str, ...] = (), float16_io: bool = False,
                      int8_companion: CompanionFn | None = None) -> Callable[[ExportFn], ExportFn]:
    """Register the exporter of format `name` (one of manifest.FORMATS)."""
    def wrap(fn: ExportFn) -> ExportFn:
        _EXPORTERS[name] = Exporter(name, fn, precisions, quantize, backends, float16_io, int8_companion)
        return fn

    return wrap


def register_group_exporter(name: str) -> Callable[[GroupExportFn], GroupExportFn]:
    """Register format `name`'s exporter of weight-sharing parts (after its exporter)."""
    def wrap(fn: GroupExportFn) -> GroupExportFn:
        _EXPORTERS[name] = replace(_EXPORTERS[name], export_group=fn)
        return fn

    return wrap


def exporters() -> dict[str, Exporter]:
    for module in _MODULES:
        importlib.import_module(f"{__package__}.{module}")
    return dict(_EXPORTERS)


def get_exporter(name: str) -> Exporter:
    known = exporters()
    if name not in known:
        raise FormatError(f"unknown format {name!r}; valid formats: {', '.join(known)}")
    return known[name]


def option_values(option: str) -> tuple[str, ...]:
    """Every value of `option` ('precision', 'quantize', 'backend') that some format honours."""
    attr = _CAPABILITY[option][0]
    return tuple(dict.fromkeys(v for e in exporters().values() for v in getattr(e, attr)))


def parse_formats(text: str) -> list[str]:
    """'onnx,executorch' -> the formats, checked as every other list is: no empty item, none twice."""
    try:
        return parse_names(text, "--format", list(exporters()), "formats")
    except NumberError as err:
        raise FormatError(str(err)) from None


def check_options(formats: list[str], options: ExportOptions) -> list[str]:
    """Refuse an asked option that no format in `formats` honours (OptionError naming the formats
    that would); return one note per option that only some of them honour."""
    notes = []
    for f in fields(options):
        value, default = getattr(options, f.name), _CAPABILITY[f.name][1]
        if value in (None, default):
            continue
        honouring = [n for n, e in exporters().items() if e.honours(f.name, value)]
        asked = [n for n in formats if n in honouring]
        if not asked:
            where = ", ".join(honouring) if honouring else "no format"
            raise OptionError(f"--{f.name} {value} applies to {where}, not to the asked format(s) {', '.join(formats)}")
        others = [n for n in formats if n not in honouring]
        if others:
            notes.append(f"--{f.name} {value} applies to {', '.join(asked)}, not to {', '.join(others)}")
    for name in formats:
        _check_quantize_alone(name, get_exporter(name).options_for(options))
    return notes


def _check_quantize_alone(name: str, got: ExportOptions) -> None:
    """A quantize mode takes the fp32 model on the format's default (first) backend."""
    if got.quantize and got.precision != "fp32":
        raise OptionError(f"--quantize {got.quantize} and --precision {got.precision} cannot both apply to {name}: "
                          f"{got.quantize} quantises the fp32 model; give one of them")
    backends = get_exporter(name).backends
    if got.quantize and backends and got.backend != backends[0]:
        raise OptionError(f"--quantize {got.quantize} for {name} runs on the {backends[0]} backend, not "
                          f"{got.backend}; drop --backend {got.backend} or --quantize")
