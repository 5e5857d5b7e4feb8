"""Core AI exporter: torch.export program -> coreai-torch -> model.aimodel (a folder asset).

Core AI (Apple, 2026) ships a runtime for Linux CPU in `coreai-core`, so unlike Core ML its
artifacts are validated numerically here (runtime/runners/coreai.py CoreAIRunner). The converter has
no lowering for sort/argsort or scatter_reduce; the op check names them before conversion, and
any other op the converter refuses is reported in one line with the converter's own words.

fp16 converts the half-precision program: the asset takes and returns float16, as ExecuTorch's
fp16 graph does. The merge is traced in MERGE_OPS's spelling (see docs/coreai.md for the timing
that chose it).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

from ..graphs.methods.merge import ARITHMETIC
from .opcheck import OpProblem, UnsupportedOpError, check_graph
from .registry import ExportOptions, PartInfo, register_exporter, register_group_exporter

MINIMUM_OS = "v27"  # coreai.authoring.asset.OSVersion: the only one the converter writes
MERGE_OPS = ARITHMETIC


def import_coreai_torch():
    """coreai_torch, without its warning that torch 2.13.0+cpu is newer than 2.13.0 (deferred: a
    heavy import that only Core AI exports need)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="coreai-torch has only been validated")
        import coreai_torch

    return coreai_torch


def convert(program, part: PartInfo, out: Path) -> None:
    """Decompose, convert and save `program` as the asset `out` (a `.aimodel` folder), with the
    part's input and output names (the converter would otherwise invent `addmm_24`)."""
    convert_functions({"main": (program, part)}, out)


def convert_functions(entries: dict[str, tuple], out: Path) -> None:
    """Function name -> (program, part), converted together into one asset `out`: the converter
    stages each program as an entrypoint of one module, and a constant several of them hold is
    stored once (docs/shared_weights.md)."""
    from coreai.authoring.asset import OSVersion

    coreai_torch = import_coreai_torch()
    converter = coreai_torch.TorchConverter(mode=coreai_torch.TorchConverter.Mode.RELEASE)
    stem = next(iter(entries.values()))[1].stem
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            for name, (program, part) in entries.items():
                stem = part.stem
                converter.add_exported_program(program.run_decompositions(coreai_torch.get_decomp_table()),
                                               input_names=list(part.input_names),
                                               output_names=list(part.output_names), entrypoint_name=name)
            asset = converter.to_coreai()
    except ValueError as err:  # the converter's own word on an op it has no lowering for
        reason = str(err).splitlines()[0]
        raise UnsupportedOpError(stem, "coreai", [OpProblem("-", "converter", reason)]) from err
    asset.save_asset(out, minimum_os=OSVersion(MINIMUM_OS))


@register_exporter("coreai", precisions=("fp32", "fp16"), float16_io=True)
def export_coreai(get_program, part: PartInfo, out: Path, options: ExportOptions) -> dict:
    program = get_program(options.precision, MERGE_OPS)
    problems = check_graph(program, "coreai")
    if problems:
        raise UnsupportedOpError(part.stem, "coreai", problems)
    convert(program, part, out)
    return {"precision": options.precision, "minimum_os": MINIMUM_OS, "merge_ops": MERGE_OPS.name}


@register_group_exporter("coreai")
def export_coreai_functions(get_programs: dict, parts: dict[str, PartInfo], out: Path,
                            options: ExportOptions) -> dict[str, dict]:
    """Parts that share their weights -> one asset with a function per part (named after it): the
    converter stores a weight that several functions hold once."""
    entries = {}
    for stem, part in parts.items():
        program = get_programs[stem](options.precision, MERGE_OPS)
        problems = check_graph(program, "coreai")
        if problems:
            raise UnsupportedOpError(stem, "coreai", problems)
        entries[stem] = (program, part)
    convert_functions(entries, out)
    return {stem: {"precision": options.precision, "minimum_os": MINIMUM_OS, "merge_ops": MERGE_OPS.name,
                   "function": stem} for stem in parts}
