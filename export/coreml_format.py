"""Core ML exporter: torch.export program -> coremltools -> model.mlpackage (ML program).

Conversion and spec inspection run on any OS; prediction needs macOS, so Linux validation checks
the spec (static shapes, op list) and reports numerics as 'needs macOS'.
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
from pathlib import Path

from .opcheck import OpProblem, UnsupportedOpError, check_graph
from .registry import ExportOptions, PartInfo, register_exporter, register_group_exporter

log = logging.getLogger(__name__)


def _rename_features(model, inputs: tuple[str, ...], outputs: tuple[str, ...]) -> None:
    """The part's input and output names on the model: the converter names inputs after the
    forward's arguments (a block part's `h`, where the manifest says `h00`)."""
    import coremltools as ct

    spec = model._spec
    for old, new in zip([i.name for i in spec.description.input], inputs, strict=True):
        if old != new:
            ct.utils.rename_feature(spec, old, new, rename_outputs=False)
    for old, new in zip([o.name for o in spec.description.output], outputs, strict=True):
        if old != new:
            ct.utils.rename_feature(spec, old, new, rename_inputs=False)


@register_exporter("coreml", precisions=("fp32", "fp16"))
def export_coreml(get_program, part: PartInfo, out: Path, options: ExportOptions) -> dict:
    import coremltools as ct

    program = get_program("fp32")
    problems = check_graph(program, "coreml")
    if problems:
        raise UnsupportedOpError(part.stem, "coreml", problems)
    precision = ct.precision.FLOAT16 if options.precision == "fp16" else ct.precision.FLOAT32
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # coremltools draws a progress bar per pass
            model = ct.convert(program.run_decompositions(), convert_to="mlprogram", compute_precision=precision,
                               minimum_deployment_target=ct.target.iOS17)
    except NotImplementedError as err:  # the converter's own word on an op it cannot take
        raise UnsupportedOpError(part.stem, "coreml", [OpProblem("-", str(err), "no Core ML converter")]) from err
    _rename_features(model, part.input_names, part.output_names)
    model = ct.models.MLModel(model._spec, weights_dir=model.weights_dir, skip_model_load=True)
    model.save(str(out))
    return {"precision": options.precision, "minimum_deployment_target": "iOS17"}


@register_group_exporter("coreml")
def export_coreml_functions(get_programs: dict, parts: dict[str, PartInfo], out: Path,
                            options: ExportOptions) -> dict[str, dict]:
    """Parts that share their weights -> one multifunction .mlpackage, a function per part (named
    after it, the first the default). coremltools' save_multifunction stores a weight that several
    functions hold once (it deduplicates identical constants). Multifunction models need iOS 18."""
    import coremltools as ct

    tmp = out.parent / f".{out.stem}.functions"
    tmp.mkdir()
    try:
        desc = ct.utils.MultiFunctionDescriptor()
        details = {}
        for stem, part in parts.items():
            path = tmp / f"{stem}.mlpackage"
            details[stem] = {**export_coreml(get_programs[stem], part, path, options),
                             "function": stem, "minimum_deployment_target": "iOS18"}
            desc.add_function(str(path), src_function_name="main", target_function_name=stem)
        desc.default_function_name = next(iter(parts))
        with contextlib.redirect_stderr(io.StringIO()):
            ct.utils.save_multifunction(desc, str(out))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return details
