"""The `tomobile` command line. Arguments become config objects here, at the boundary; library
code never sees an argparse namespace. Bad input ends in one line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import shutil
import sys
import warnings
from pathlib import Path

from tomobile.graphs.config import SPEC_HELP, MergeConfig, SpecError
from tomobile.graphs.exportable import ModelBundle
from tomobile.runtime.validate import ValidationError

from .opcheck import UnsupportedOpError
from .registry import BACKENDS, PRECISIONS, QUANTIZE, ExportOptions, FormatError, exporters, parse_formats

# Command modules beside this one; each has add_parser(subparsers) that sets `handler`.
_COMMAND_MODULES = ("cmd_generate", "cmd_eval", "cmd_bench")
DEFAULT_OUT = Path("tomobile-out")


# Bad input: printed as one line, exit code 2.
USER_ERRORS = (SpecError, FormatError, UnsupportedOpError, ValidationError, FileNotFoundError, KeyError, ValueError)


def resolve_model(name: str, config: MergeConfig) -> ModelBundle:
    """A built-in model name or a local Hugging Face model folder -> bundle, patched per `config`."""
    from tomobile.graphs.registry import get_model, load_builtin_models
    from tomobile.graphs.zoo import load_local

    if name in load_builtin_models():
        return get_model(name).builder(config)
    path = Path(name)
    if path.exists():
        return load_local(path, config)
    return get_model(name).builder(config)  # raises KeyError listing the built-in names


def cmd_models(args: argparse.Namespace) -> int:
    from tomobile.graphs.registry import load_builtin_models

    models = load_builtin_models()
    width = max(len(n) for n in models)
    for name, entry in sorted(models.items()):
        print(f"{name.ljust(width)}  {entry.description}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from tomobile.runtime.validate import format_table, validate_dir

    from .pipeline import finalize, stage_export, write_manifest

    config = MergeConfig.parse(args.merge)
    formats = parse_formats(args.format)
    options = ExportOptions(backend=args.backend, precision=args.precision, quantize=args.quantize)
    out = Path(args.out) if args.out else DEFAULT_OUT / args.model.replace("/", "_")
    bundle = resolve_model(args.model, config)
    staging, manifest = stage_export(bundle, formats, out, options, progress=not args.quiet)
    try:
        passed = True
        if not args.no_validate:
            report = validate_dir(staging, progress=not args.quiet)
            manifest["validation"] = report.to_json()
            write_manifest(staging, manifest)
            print(format_table(report).replace(str(staging), str(out)))
            passed = report.passed
        finalize(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for a in manifest["artifacts"]:
        print(f"wrote {out / a['path']}  ({a['bytes'] / 1e6:.1f} MB, {a['format']}, {a.get('precision', 'fp32')})")
    print(f"wrote {out / 'manifest.json'}")
    return 0 if passed else 1


def cmd_validate(args: argparse.Namespace) -> int:
    from tomobile.runtime.validate import format_table, validate_dir

    folder = Path(args.dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder; give the DIR that `tomobile export` wrote")
    report = validate_dir(folder, progress=not args.quiet)
    print(format_table(report))
    return 0 if report.passed else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tomobile",
        description="Token-merging transformers as static graphs for phones: export to ONNX, Core ML and "
                    "ExecuTorch, validated against eager PyTorch.")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("models", help="list the built-in model names")
    p.set_defaults(handler=cmd_models)

    p = sub.add_parser("export", help="export a model (with merging) and validate every artifact",
                       description="Export MODEL to mobile formats into DIR with manifest.json, then validate.")
    p.add_argument("model", metavar="MODEL", help="a built-in name (see `tomobile models`) or a local Hugging Face "
                                                  "model folder (config.json + weights)")
    p.add_argument("--merge", default="none", metavar="SPEC", help=f"token merging: {SPEC_HELP} (default: none)")
    p.add_argument("--format", default="onnx,coreml,executorch", metavar="LIST",
                   help=f"comma-separated formats from: {', '.join(exporters())} (default: all)")
    p.add_argument("--out", metavar="DIR", help=f"output folder (default: {DEFAULT_OUT}/MODEL); replaced if it exists")
    p.add_argument("--backend", choices=BACKENDS, default="xnnpack", help="ExecuTorch backend (default: xnnpack)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="fp16 applies to coreml and executorch; onnx stays fp32 (default: fp32)")
    p.add_argument("--quantize", choices=QUANTIZE, help="int8: dynamic int8 weights for onnx (ONNX Runtime); static "
                                                        "PT2E int8 (XNNPACK quantizer, calibrated on the seeded inputs) "
                                                        "for executorch; validated by PSNR against fp32 eager")
    p.add_argument("--no-validate", action="store_true", help="skip validation against eager PyTorch")
    p.set_defaults(handler=cmd_export)

    p = sub.add_parser("validate", help="check an exported folder's checksums and numerics against eager")
    p.add_argument("dir", metavar="DIR", help="a folder written by `tomobile export`")
    p.set_defaults(handler=cmd_validate)

    for module in _COMMAND_MODULES:
        importlib.import_module(f"{__package__}.{module}").add_parser(sub)
    return parser


def _quiet_libraries() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("torch", "torch.onnx", "torch.export", "torchao", "executorch", "coremltools", "onnxscript"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


def main(argv: list[str] | None = None) -> int:
    _quiet_libraries()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except USER_ERRORS as err:
        message = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
        print(f"tomobile: error: {message.splitlines()[0] if message else type(err).__name__}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
