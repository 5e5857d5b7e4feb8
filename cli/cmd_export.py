"""`tomobile export MODEL --merge SPEC --format LIST --out DIR`: export, validate, write the manifest."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..export.output import check_out_dir
from ..export.pipeline import export_model
from ..export.registry import ExportOptions, check_options, exporters, option_values, parse_formats
from ..export.split import split_bundle
from ..graphs.models.sd_unet import MAX_SIZE as SD_MAX_SIZE
from ..graphs.spec.config import MergeConfig, spec_help
from ..runtime.manifest import DEFAULT_OUT, MANIFEST
from ..runtime.manifest_reader import Artifact
from ..runtime.report import format_table
from .checks import int_at_least, note, pixel_size
from .cmd_generate import add_tdtm_args, tdtm_options
from .model_arg import check_trace_source, diffusers_options, resolve_model, source_folder, unused_merge_options


def cmd_export(args: argparse.Namespace) -> int:
    config = MergeConfig.parse(args.merge)
    formats = parse_formats(args.format)
    options = ExportOptions(backend=args.backend, precision=args.precision, quantize=args.quantize)
    notes = check_options(formats, options)
    tdtm = {**tdtm_options(args), **diffusers_options(args.size, args.cfg, args.frames, args.text_length)}
    source = source_folder(args.model)
    out_arg = Path(args.out) if args.out else DEFAULT_OUT / (source.resolve().name if source else args.model)
    out = check_out_dir(out_arg, force=args.force, keep=(source,) if source else ())
    bundle = resolve_model(args.model, config, tdtm)
    check_trace_source(config, bundle)
    if args.split:
        bundle = split_bundle(bundle, args.split, args.quantize)
    unused = unused_merge_options(config, batch=2 if args.cfg else 1)
    for line in notes + ([unused] if unused else []):
        note(line)
    exported = export_model(bundle, formats, out, options, validate=not args.no_validate, progress=not args.quiet)
    if exported.report is not None:
        print(format_table(exported.report).replace(str(out), str(out_arg)))
    print_written(exported.artifacts(), out_arg)
    print(f"wrote {out_arg / MANIFEST}")
    return 0 if exported.passed else 1


def print_written(artifacts: tuple[Artifact, ...], out: Path) -> None:
    """One `wrote` line per file: the parts that share one file (a weight group's methods or
    functions, docs/shared_weights.md) are named on its line instead of repeating it."""
    by_path: dict[str, list[Artifact]] = {}
    for a in artifacts:
        by_path.setdefault(a.path, []).append(a)
    for path, group in by_path.items():
        a = group[0]
        weights = f" + {a.weights.path} {(a.weights.bytes or 0) / 1e6:.1f} MB" if a.weights is not None else ""
        names = [a.entry_name for a in group if a.entry_name]
        kind = "methods" if a.method else "functions"
        parts = f"; {len(names)} {kind}: {', '.join(names)}" if len(names) > 1 else ""
        print(f"wrote {out / path}  ({(a.file.bytes or 0) / 1e6:.1f} MB{weights}, {a.format}, {a.precision}{parts})")


def _honoured_by(option: str) -> str:
    """'fp16 applies to executorch, coreml' for the help text, from what each exporter declares."""
    users = {v: ", ".join(n for n, e in exporters().items() if e.honours(option, v))
             for v in option_values(option) if v != "fp32"}
    if len(users) > 1 and len(set(users.values())) == 1:
        return f"applies to {next(iter(users.values()))}"
    return "; ".join(f"{v} applies to {formats}" for v, formats in users.items())


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="export a model (with merging) and validate every artifact",
                       description="Export MODEL to mobile formats into DIR with manifest.json, then validate. A failed "
                                   "validation keeps the folder (table in its manifest) and exits 1; bad input writes "
                                   "nothing and exits 2.")
    p.add_argument("model", metavar="MODEL", help="a built-in name (see `tomobile models`), a local Hugging Face "
                                                  "model folder (config.json + weights), a local diffusers UNet, "
                                                  "Wan or LTX-Video transformer or LTX pipeline folder (its "
                                                  "transformer), or a WanPipeline folder (the whole pipeline: text "
                                                  "encoder, transformer, VAE decoder, tokenizer, scheduler)")
    p.add_argument("--merge", default="none", metavar="SPEC",
                   help=f"token merging: {spec_help()} (default: none)")
    p.add_argument("--size", type=pixel_size, metavar="HxW",
                   help="diffusers models: image or video frame size in pixels, HxW or one number for a square. "
                        f"Stable Diffusion UNets: square, a multiple of 8 from 8 to {SD_MAX_SIZE} (latent = PX/8; "
                        "default: the config's "
                        "sample_size x 8). Wan / LTX-Video transformers: multiples of 16 / 32 (the VAE's 8x / 32x times "
                        "the patch; default for the built-ins: 256x256 Wan, 512x512 LTX-Video; required for a folder)")
    p.add_argument("--frames", type=int_at_least(1), metavar="N",
                   help="Wan / LTX-Video transformers: video frames, as the pipeline's num_frames: 4k+1 for Wan, 8k+1 "
                        "for LTX-Video (latent frames = (N - 1) / 4 + 1 or (N - 1) / 8 + 1); default for the built-ins: "
                        "17 Wan (5 latent frames, 1,280 tokens at 256x256), 33 LTX-Video (5, 1,280 tokens at 512x512)")
    p.add_argument("--text-length", type=int_at_least(1, 4096), metavar="N",
                   help="a diffusers WanPipeline folder: the prompt length in tokens the text encoder and the "
                        "transformer take, as WanPipeline's max_sequence_length (default: 512)")
    p.add_argument("--cfg", action="store_true",
                   help="Stable Diffusion UNets: batch 2 (classifier-free guidance's unconditional + conditional)")
    p.add_argument("--format", default="onnx,coreml,executorch", metavar="LIST",
                   help=f"comma-separated formats from: {', '.join(exporters())} (default: onnx,coreml,executorch)")
    p.add_argument("--out", metavar="DIR",
                   help=f"output folder (default: {DEFAULT_OUT}/MODEL); an earlier tomobile export there is "
                        "replaced, a folder with other files is refused")
    p.add_argument("--force", action="store_true", help="replace whatever is at --out (never the model folder)")
    p.add_argument("--backend", choices=option_values("backend"),
                   help=f"ExecuTorch backend (default: {option_values('backend')[0]}); {_honoured_by('backend')}")
    p.add_argument("--precision", choices=option_values("precision"), default="fp32",
                   help=f"default: fp32; {_honoured_by('precision')}")
    p.add_argument("--quantize", choices=option_values("quantize"),
                   help="int8: dynamic int8 weights for onnx, static PT2E int8 (XNNPACK quantizer, calibrated on the "
                        f"seeded inputs) for executorch; validated by PSNR against fp32 eager; {_honoured_by('quantize')}")
    p.add_argument("--no-validate", action="store_true", help="skip validation against eager PyTorch")
    p.add_argument("--split", choices=("blocks",),
                   help="video denoisers and Wan transformers: also write them as ordered parts (embedding, one per "
                        "transformer block and merge variant, final) for block streaming (`generate --stream` for "
                        "the video-dit models); each part validated on its slice, the chain on the monolithic output")
    add_tdtm_args(p, "the checkpoint's recorded setting (video-dit models); Wan / LTX-Video with --merge tdtm: "
                     "positions original, odd frames first")
    p.set_defaults(handler=cmd_export)
