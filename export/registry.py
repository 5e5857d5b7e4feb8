"""Exporters registered by format name. An unknown name is an error that lists the valid ones."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

# export(program, example_inputs, out_path, options) -> None. The program is the fp32 or fp16
# torch.export ExportedProgram of one part; out_path is where the artifact goes.
ExportFn = Callable[[torch.export.ExportedProgram, "PartInfo", Path, "ExportOptions"], dict]


@dataclass(frozen=True)
class ExportOptions:
    backend: str = "xnnpack"  # ExecuTorch: xnnpack | portable
    precision: str = "fp32"  # fp32 | fp16
    # "int8": ONNX = dynamic int8 weights (onnxruntime.quantization); ExecuTorch = static PT2E int8
    # (XNNPACK quantizer, calibrated on the seeded inputs)
    quantize: str | None = None


@dataclass(frozen=True)
class PartInfo:
    stem: str
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    calibration: tuple = ()  # input tuples for static quantisation (seeded inputs)


@dataclass(frozen=True)
class Exporter:
    name: str
    suffix: str  # artifact file name suffix: .onnx, .pte, .mlpackage
    export: ExportFn
    precisions: tuple[str, ...]  # precisions this format honours; others fall back to fp32


_EXPORTERS: dict[str, Exporter] = {}
_MODULES = ("onnx_format", "executorch_format", "coreml_format")
BACKENDS = ("xnnpack", "portable")
PRECISIONS = ("fp32", "fp16")
QUANTIZE = ("int8",)


class FormatError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; print it plainly
        return str(self.args[0])


def register_exporter(name: str, suffix: str, precisions: tuple[str, ...]) -> Callable[[ExportFn], ExportFn]:
    def wrap(fn: ExportFn) -> ExportFn:
        _EXPORTERS[name] = Exporter(name, suffix, fn, precisions)
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


def parse_formats(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise FormatError(f"no format given; valid formats: {', '.join(exporters())}")
    for n in names:
        get_exporter(n)
    return list(dict.fromkeys(names))
