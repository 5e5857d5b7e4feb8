"""Every bad input gets exit code 2, exactly one stderr line starting `tomobile: error:`, no
traceback, and leaves the output location as it was (issue 13: the table-driven CLI test).

Rows run in process (`main`), which is what the `tomobile` script calls; a few also run as real
processes. `{w}` in a row is the scratch folder (the current folder during the row), which holds
the fixtures below; the whole tree under it is compared before and after each row. Bad local
Hugging Face model folders (issue 12) have their own table, BAD_FOLDERS in
tests/graphs/models/test_hf_folder.py, run through `main` the same way.
"""

from __future__ import annotations

import json
import os
import random
import string
import subprocess
import sys
from pathlib import Path

import pytest
from fakes import fake_export, fake_video_export

from tomobile.cli.main import main

GEN = ["generate", "a red circle moving left", "--out", "{w}/clip.gif"]
VIDEO = ["eval", "video", "--out", "{w}/eval"]
BENCH = ["bench", "vit-tiny", "--merge", "tome:r=8", "--work", "{w}/bench"]

ROWS: list[tuple[str, list[str]]] = [
    # export: names, specs, options that no asked format honours
    ("unknown model", ["export", "no-such-model", "--out", "{w}/out"]),
    ("unknown format", ["export", "vit-tiny", "--format", "onnx,tflite", "--out", "{w}/out"]),
    ("empty format list", ["export", "vit-tiny", "--format", ",", "--out", "{w}/out"]),
    ("spec not an integer", ["export", "vit-tiny", "--merge", "tome:r=abc", "--out", "{w}/out"]),
    ("spec underscore digits", ["export", "vit-tiny", "--merge", "tome:r=1_0", "--out", "{w}/out"]),
    ("spec non-ASCII digits", ["export", "vit-tiny", "--merge", "tome:r=\u0661\u0660", "--out", "{w}/out"]),
    ("spec duplicate key", ["export", "vit-tiny", "--merge", "tome:r=8,schedule=constant,schedule=decreasing",
                            "--out", "{w}/out"]),
    ("spec r too large", ["export", "vit-tiny", "--merge", "tome:r=40", "--out", "{w}/out"]),
    ("trace_source with no source output", ["export", "vit-tiny", "--merge", "tome:r=8,trace_source=1", "--out", "{w}/out"]),
    ("--merge on video-dit-tiny", ["export", "video-dit-tiny", "--merge", "tome:r=2", "--out", "{w}/out"]),
    ("fp16 with onnx only", ["export", "vit-tiny", "--precision", "fp16", "--format", "onnx", "--out", "{w}/out"]),
    ("int8 with fp16 on executorch", ["export", "vit-tiny", "--quantize", "int8", "--precision", "fp16", "--format",
                                      "executorch", "--out", "{w}/out"]),
    ("int8 with portable executorch", ["export", "vit-tiny", "--quantize", "int8", "--backend", "portable", "--format",
                                       "executorch", "--out", "{w}/out"]),
    ("int8 with coreml", ["export", "vit-tiny", "--quantize", "int8", "--format", "coreml", "--out", "{w}/out"]),
    ("portable with onnx", ["export", "vit-tiny", "--backend", "portable", "--format", "onnx", "--out", "{w}/out"]),
    ("unknown backend", ["export", "vit-tiny", "--backend", "metal", "--out", "{w}/out"]),
    ("unknown quantize mode", ["export", "vit-tiny", "--quantize", "int4", "--out", "{w}/out"]),
    # export: --out
    ("--out holds the user's files", ["export", "vit-tiny", "--out", "{w}/mine"]),
    ("--out is the model folder", ["export", "{w}/model", "--out", "{w}/model"]),
    ("--out holds the model folder", ["export", "{w}/model", "--out", "{w}", "--force"]),
    ("--out is a regular file", ["export", "vit-tiny", "--out", "{w}/notes.txt"]),
    ("--out under a regular file", ["export", "vit-tiny", "--out", "{w}/notes.txt/out"]),
    ("--out is .", ["export", "vit-tiny", "--out", "."]),
    ("--out in a read-only folder", ["export", "vit-tiny", "--format", "onnx", "--out", "{ro}/out"]),
    # validate
    ("validate a missing folder", ["validate", "{w}/missing"]),
    ("validate a file", ["validate", "{w}/notes.txt"]),
    ("validate a folder without manifest", ["validate", "{w}/mine"]),
    ("validate manifest [1,2,3]", ["validate", "{w}/list-manifest"]),
    ("validate manifest {}", ["validate", "{w}/empty-manifest"]),
    ("validate manifest without format", ["validate", "{w}/no-format"]),
    ("validate invalid JSON", ["validate", "{w}/bad-json"]),
    ("validate an absolute artifact path", ["validate", "{w}/absolute-path"]),
    ("validate a path out of the folder", ["validate", "{w}/dotdot-path"]),
    ("validate a changed artifact", ["validate", "{w}/changed"]),
    # generate
    ("--guidance nan", [*GEN, "--guidance", "nan"]),
    ("--guidance -inf", [*GEN, "--guidance=-inf"]),
    ("--steps 0", [*GEN, "--steps", "0"]),
    ("--seed -1", [*GEN, "--seed", "-1"]),
    ("--tdtm-steps above --steps", [*GEN, "--tdtm-steps", "40"]),
    ("--lpl at the last step", [*GEN, "--lpl", "29"]),
    ("--lpl not a count", [*GEN, "--lpl", "fast"]),
    ("--timesteps unknown", [*GEN, "--timesteps", "bogus"]),
    ("--artifacts with eager", [*GEN, "--artifacts", "{w}/video"]),
    ("onnxruntime without --artifacts", [*GEN, "--runtime", "onnxruntime"]),
    ("--artifacts of a non-video export", [*GEN, "--runtime", "onnxruntime", "--artifacts", "{w}/changed"]),
    ("--artifacts missing", [*GEN, "--runtime", "onnxruntime", "--artifacts", "{w}/missing"]),
    ("--artifacts without executorch files", [*GEN, "--runtime", "executorch", "--artifacts", "{w}/video"]),
    ("needed variant damaged", [*GEN, "--runtime", "onnxruntime", "--artifacts", "{w}/video", "--tdtm-steps", "2"]),
    ("generate --out is a folder", ["generate", "a red circle moving left", "--out", "{w}/mine.gif"]),
    ("generate --out under a file", ["generate", "a red circle moving left", "--out", "{w}/notes.txt/clip.gif"]),
    ("generate --out .avi", ["generate", "a red circle moving left", "--out", "{w}/clip.avi"]),
    # eval video / eval text
    ("eval video --prompts -11", [*VIDEO, "--prompts", "-11"]),
    ("eval video --prompts 13", [*VIDEO, "--prompts", "13"]),
    ("eval video --steps 2", [*VIDEO, "--steps", "2"]),
    ("eval video --guidance nan", [*VIDEO, "--guidance", "nan"]),
    ("eval video --out is a file", ["eval", "video", "--out", "{w}/notes.txt"]),
    ("eval video --artifacts with eager", [*VIDEO, "--artifacts", "{w}/video"]),
    ("eval video --weights without wan-shapes", [*VIDEO, "--weights", "{w}/notes.txt"]),
    ("eval video wan-shapes --runtime onnxruntime", [*VIDEO, "--model", "wan-shapes", "--runtime", "onnxruntime"]),
    ("eval video wan-shapes --mode-sets", [*VIDEO, "--model", "wan-shapes", "--mode-sets", "original"]),
    ("eval video wan-shapes --no-tome", [*VIDEO, "--model", "wan-shapes", "--no-tome"]),
    ("eval video wan-shapes --prompts 17", [*VIDEO, "--model", "wan-shapes", "--prompts", "17"]),
    ("eval video wan-shapes missing --weights", [*VIDEO, "--model", "wan-shapes", "--weights", "{w}/none.safetensors"]),
    ("eval video wan-shapes --weights not safetensors", [*VIDEO, "--model", "wan-shapes", "--weights", "{w}/notes.txt"]),
    ("eval video unknown --model", [*VIDEO, "--model", "wan-2"]),
    ("eval text --seq-lens 600", ["eval", "text", "--seq-lens", "600"]),
    ("eval text --seq-lens 1_0", ["eval", "text", "--seq-lens", "1_0"]),
    ("eval text r too large", ["eval", "text", "--seq-lens", "16", "--r", "9"]),
    ("eval text --runs 0", ["eval", "text", "--runs", "0"]),
    ("eval text --json under a file", ["eval", "text", "--json", "{w}/notes.txt/t.json"]),
    # bench: every spec and path checked before any export
    ("bench second spec bad", ["bench", "vit-tiny", "--merge", "tome:r=8;tome:r=abc", "--work", "{w}/bench"]),
    ("bench second spec too large", ["bench", "vit-tiny", "--merge", "tome:r=8;tome:r=40", "--work", "{w}/bench"]),
    ("bench --json is a folder", [*BENCH, "--json", "{w}/mine"]),
    ("bench --plot not png", [*BENCH, "--plot", "{w}/speed.jpg"]),
    ("bench --runs 0", [*BENCH, "--runs", "0"]),
    ("bench unknown runtime", [*BENCH, "--runtime", "tflite"]),
    ("bench --size on an encoder", [*BENCH, "--size", "64"]),
    ("bench --size not a multiple of 8", ["bench", "sd-unet-tiny", "--merge", "tomesd:ratio=0.5", "--size", "60",
                                          "--work", "{w}/bench"]),
    ("bench work folder holds user files", ["bench", "vit-tiny", "--merge", "tome:r=8", "--work", "{w}/userwork"]),
    ("bench --frames on a UNet", ["bench", "sd-unet-tiny", "--merge", "tomesd:ratio=0.5", "--frames", "9",
                                  "--work", "{w}/bench"]),
    ("bench tome on a video transformer", ["bench", "wan-tiny", "--merge", "tome:r=4", "--work", "{w}/bench"]),
    ("bench video size the VAE refuses", ["bench", "wan-tiny", "--merge", "tdtm", "--size", "33x32",
                                          "--work", "{w}/bench"]),
    ("bench --stream with --merge", ["bench", "video-dit-micro", "--stream", "--merge", "tome:r=8", "--work", "{w}/sb"]),
    ("bench --stream with --quantize", ["bench", "video-dit-micro", "--stream", "--quantize", "int8", "--work", "{w}/sb"]),
    ("bench --stream two thread counts", ["bench", "video-dit-micro", "--stream", "--threads", "1,3", "--work", "{w}/sb"]),
    ("bench --stream bench's list", ["bench", "video-dit-micro", "--stream", "--threads", "1,2", "--work", "{w}/sb"]),
    ("bench empty --threads", [*BENCH, "--threads", ""]),
    ("bench --stream --steps 1", ["bench", "video-dit-micro", "--stream", "--steps", "1", "--work", "{w}/sb"]),
    # issue 18: numbers (one parser: ASCII digits, no duplicates, finite, fits its dtype), checked before any work
    ("--memory-budget inf", [*GEN, "--stream", "--memory-budget", "inf"]),
    ("--memory-budget 1e400", [*GEN, "--stream", "--memory-budget", "1e400"]),
    ("--memory-budget infMB", [*GEN, "--stream", "--memory-budget", "infMB"]),
    ("--memory-budget nan", [*GEN, "--stream", "--memory-budget", "nan"]),
    ("--memory-budget full-width 2MB", [*GEN, "--stream", "--memory-budget", "\uff12MB"]),
    ("--memory-budget 1_000MB", [*GEN, "--stream", "--memory-budget", "1_000MB"]),
    ("--memory-budget 1e3MB", [*GEN, "--stream", "--memory-budget", "1e3MB"]),
    ("--budgets inf%", ["bench", "video-dit-micro", "--stream", "--budgets", "inf%", "--work", "{w}/sb"]),
    ("--budgets nan", ["bench", "video-dit-micro", "--stream", "--budgets", "nan", "--work", "{w}/sb"]),
    ("--budgets 1e400", ["bench", "video-dit-micro", "--stream", "--budgets", "1e400", "--work", "{w}/sb"]),
    ("--budgets twice", ["bench", "video-dit-micro", "--stream", "--budgets", "50%,50%", "--work", "{w}/sb"]),
    ("--budgets empty item", ["bench", "video-dit-micro", "--stream", "--budgets", "50%,,100%", "--work", "{w}/sb"]),
    ("--guidance 1e308 (inf in float32)", [*GEN, "--guidance", "1e308"]),
    ("eval video --guidance 1e308", [*VIDEO, "--guidance", "1e308"]),
    ("--seed above 2^64-1", [*GEN, "--seed", "99999999999999999999999"]),
    ("--steps full-width", [*GEN, "--steps", "\uff12"]),
    ("--steps 1_0", [*GEN, "--steps", "1_0"]),
    ("eval text --threads 99999", ["eval", "text", "--threads", "99999"]),
    ("eval text --threads full-width", ["eval", "text", "--threads", "\uff12"]),
    ("bench --threads 99999", [*BENCH, "--threads", "99999"]),
    ("bench --stream --threads 99999", ["bench", "video-dit-micro", "--stream", "--threads", "99999", "--work", "{w}/sb"]),
    ("bench --threads full-width", [*BENCH, "--threads", "\uff12"]),
    ("bench --threads 1_0", [*BENCH, "--threads", "1_0"]),
    ("bench --threads 1,,2", [*BENCH, "--threads", "1,,2"]),
    ("bench --threads 1,1", [*BENCH, "--threads", "1,1"]),
    ("bench --runs full-width", [*BENCH, "--runs", "\uff12"]),
    ("eval text --seq-lens 128,128", ["eval", "text", "--seq-lens", "128,128"]),
    ("eval text --r 2,2", ["eval", "text", "--r", "2,2"]),
    # issue 18: other inputs
    ("prompt with invalid UTF-8", ["generate", "a red \udcff circle", "--out", "{w}/clip.gif"]),
    ("--merge on video-dit-micro", ["export", "video-dit-micro", "--merge", "tome:r=2", "--out", "{w}/out"]),
    ("--merge on video-dit-large", ["export", "video-dit-large", "--merge", "tome:r=2", "--out", "{w}/out"]),
    ("--tdtm-odd on video-dit-micro", ["export", "video-dit-micro", "--tdtm-odd", "keep", "--out", "{w}/out"]),
    ("--split on vit-tiny", ["export", "vit-tiny", "--split", "blocks", "--out", "{w}/out"]),
    ("eval text --markdown x.png", ["eval", "text", "--markdown", "{w}/x.png"]),
    ("eval text --methods drop", ["eval", "text", "--methods", "tome,drop"]),
    ("eval text --methods twice", ["eval", "text", "--methods", "pitome,pitome"]),
    ("stream without a text encoder", [*GEN, "--runtime", "onnxruntime", "--artifacts", "{w}/no-text-split", "--stream",
                                       "--memory-budget", "64MB"]),
    # issue 30: diffusers video transformers (Wan, LTX-Video): specs, shapes the VAE cannot take, folders
    ("--merge tome: on wan-tiny", ["export", "wan-tiny", "--merge", "tome:r=2", "--out", "{w}/out"]),
    ("--merge pitome: on ltx-tiny", ["export", "ltx-tiny", "--merge", "pitome:ratio=0.9", "--out", "{w}/out"]),
    ("--merge tomesd: on wan-tiny", ["export", "wan-tiny", "--merge", "tomesd:ratio=0.5", "--out", "{w}/out"]),
    ("--merge tdtm on vit-tiny", ["export", "vit-tiny", "--merge", "tdtm", "--out", "{w}/out"]),
    ("--merge tdtm with options", ["export", "wan-tiny", "--merge", "tdtm:odd=first", "--out", "{w}/out"]),
    ("--merge tome: on the 1.3B Wan", ["export", "wan21-t2v-1.3b", "--merge", "tome:r=2", "--out", "{w}/out"]),
    ("Wan --frames not 4k+1", ["export", "wan-tiny", "--frames", "16", "--out", "{w}/out"]),
    ("LTX --frames not 8k+1", ["export", "ltx-tiny", "--frames", "13", "--out", "{w}/out"]),
    ("Wan --frames 0", ["export", "wan-tiny", "--frames", "0", "--out", "{w}/out"]),
    ("Wan --size not a multiple of 16", ["export", "wan-tiny", "--size", "250x256", "--out", "{w}/out"]),
    ("LTX --size not a multiple of 32", ["export", "ltx-tiny", "--size", "512x500", "--out", "{w}/out"]),
    ("--size with three sides", ["export", "wan-tiny", "--size", "64x64x64", "--out", "{w}/out"]),
    ("--size full-width digits", ["export", "wan-tiny", "--size", "\uff16\uff14", "--out", "{w}/out"]),
    ("tdtm on one latent frame", ["export", "wan-tiny", "--merge", "tdtm", "--frames", "1", "--out", "{w}/out"]),
    ("--tdtm-odd without tdtm", ["export", "wan-tiny", "--tdtm-odd", "first", "--out", "{w}/out"]),
    ("--tdtm-odd unknown", ["export", "wan-tiny", "--merge", "tdtm", "--tdtm-odd", "last", "--out", "{w}/out"]),
    ("--tdtm-positions on wan-tiny", ["export", "wan-tiny", "--tdtm-positions", "midpoint", "--out", "{w}/out"]),
    ("--cfg on wan-tiny", ["export", "wan-tiny", "--cfg", "--out", "{w}/out"]),
    ("--frames on vit-tiny", ["export", "vit-tiny", "--frames", "9", "--out", "{w}/out"]),
    ("--frames on sd-unet-tiny", ["export", "sd-unet-tiny", "--frames", "9", "--out", "{w}/out"]),
    ("non-square --size on a UNet", ["export", "sd-unet-tiny", "--size", "64x32", "--out", "{w}/out"]),
    ("Wan pipeline without a transformer", ["export", "{w}/wan-pipe-empty", "--size", "64", "--frames", "9",
                                            "--out", "{w}/out"]),
    ("unsupported transformer class", ["export", "{w}/cogvideo-transformer", "--size", "64", "--frames", "9",
                                       "--out", "{w}/out"]),
    ("unsupported pipeline class", ["export", "{w}/cogvideo-pipe", "--size", "64", "--frames", "9", "--out", "{w}/out"]),
    ("Wan folder without --size", ["export", "{w}/wan-no-weights", "--frames", "9", "--out", "{w}/out"]),
    ("Wan folder without weights", ["export", "{w}/wan-no-weights", "--size", "64", "--frames", "9", "--out", "{w}/out"]),
    ("Wan image-to-video folder", ["export", "{w}/wan-i2v", "--size", "64", "--frames", "9", "--out", "{w}/out"]),
    ("LTX folder with patch 2", ["export", "{w}/ltx-patch2", "--size", "64", "--frames", "9", "--out", "{w}/out"]),
    ("Wan pipeline holding an LTX transformer", ["export", "{w}/wan-pipe-ltx", "--size", "64", "--frames", "9",
                                                 "--out", "{w}/out"]),
    ("--cfg on a Wan folder", ["export", "{w}/wan-no-weights", "--cfg", "--out", "{w}/out"]),
    # issue 33 (hardening, round 3): each row failed before its fix (a traceback, exit 0 or exit 1)
    *((f"diffrate file {name}", ["export", "vit-tiny", "--merge", f"diffrate:file={{w}}/dr-{name}.json,model=M,flops=1",
                                 "--format", "onnx", "--out", "{w}/out"])
      for name in ("1e400", "nan", "65.5", "top-array", "model-array", "nested")),  # items 9, 10
    ("tomesd sx,sy above the grid", ["export", "sd-unet-tiny", "--merge", "tomesd:ratio=0.5,sx=17,sy=17", "--format",
                                     "onnx", "--out", "{w}/out"]),  # item 11
    ("tomesd sx above a deep block's grid", ["export", "sd-unet-tiny", "--merge", "tomesd:ratio=0.5,max_downsample=8,sx=5,sy=3",
                                             "--format", "onnx", "--out", "{w}/out"]),  # item 11
    ("tomesd seed 2^64", ["export", "sd-unet-tiny", "--merge", "tomesd:ratio=0.5,use_rand=1,seed=18446744073709551616",
                          "--format", "onnx", "--out", "{w}/out"]),  # item 12
    ("--size 99999992", ["export", "{w}/unet", "--merge", "tomesd:ratio=0.5", "--size", "99999992", "--out", "{w}/out"]),
    ("--size 2056", ["export", "sd-unet-tiny", "--merge", "tomesd:ratio=0.5", "--size", "2056", "--out", "{w}/out"]),
    ("bench --size 99999992", ["bench", "sd-unet-tiny", "--merge", "tomesd:ratio=0.5", "--size", "99999992", "--work",
                               "{w}/bench"]),  # item 13
    ("validate 100000 nested [", ["validate", "{w}/nested-manifest"]),  # item 14
    ("validate a split part's sha256", ["validate", "{w}/split-sha"]),  # item 6, Python side
    ("drop trace_source", ["export", "vit-tiny", "--merge", "drop:r=8,trace_source=1", "--out", "{w}/out"]),  # item 15
    ("drop:pitome trace_source", ["export", "vit-tiny", "--merge", "drop:pitome:ratio=0.9,trace_source=1",
                                  "--out", "{w}/out"]),
    ("tomesd merging nothing", ["export", "{w}/unet-deep", "--merge", "tomesd:ratio=0.5", "--format", "onnx",
                                "--out", "{w}/out"]),  # item 16
    ("bench --native without --stream", [*BENCH, "--native"]),  # item 18
    ("--format coreai,coreai", ["export", "vit-tiny", "--format", "coreai,coreai", "--out", "{w}/out"]),  # item 19
    ("--format onnx,", ["export", "vit-tiny", "--format", "onnx,", "--out", "{w}/out"]),
    ("pitome more than half", ["export", "vit-tiny", "--merge", "pitome:ratio=0.45", "--out", "{w}/out"]),
    ("bench --runtime twice", [*BENCH, "--runtime", "onnxruntime,onnxruntime"]),
    ("bench --runtime empty item", [*BENCH, "--runtime", "onnxruntime,,executorch"]),
    ("bench --stream --runtime twice", ["bench", "video-dit-micro", "--stream", "--runtime", "executorch,executorch",
                                       "--work", "{w}/sb"]),
    ("bench --runs 10001", [*BENCH, "--runs", "10001"]),  # the number rules: runs 1..10000, as steps
    ("eval text --runs 10001", ["eval", "text", "--runs", "10001"]),
    ("--memory-budget Kelvin sign", [*GEN, "--stream", "--memory-budget", "64\u212aB"]),
    ("--memory-budget no-break space", [*GEN, "--stream", "--memory-budget", "\u00a064MB"]),
    # the command line itself
    ("no command", []),
    ("unknown command", ["convert"]),
    ("missing argument", ["export"]),
]


def _garbage_specs(n: int) -> list[tuple[str, list[str]]]:
    """Valid specs with one character inserted that no spec may contain where it lands."""
    rng = random.Random(1313)
    valid = ["none", "tome:r=8", "tome:r=4,8,8", "tome:r=8,schedule=decreasing", "tome:r=8,prop_attn=0"]
    rows = []
    for i in range(n):
        spec = rng.choice(valid)
        at = rng.randrange(len(spec) + 1)
        bad = spec[:at] + rng.choice("!@#$%^&*_+-.;/?~x\u0661") + spec[at:]
        rows.append((f"garbage spec {i}: {bad!r}", ["export", "vit-tiny", "--merge", bad, "--out", "{w}/out"]))
    return rows


def _generated_numbers(n: int) -> list[tuple[str, list[str]]]:
    """Random budgets, thread counts and number spellings that the one number parser must refuse."""
    rng = random.Random(1818)
    digits = "0123456789"
    spell = [lambda d: d.replace(d[0], "\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19"[int(d[0])], 1),
             lambda d: d[:1] + "_" + d[1:] if len(d) > 1 else d + "_0", lambda d: "+" + d, lambda d: d + "e3",
             lambda d: "\u0661" + d, lambda d: d + ",," + d, lambda d: d + "," + d]
    rows = []
    for i in range(n):
        d = "".join(rng.choice(digits) for _ in range(rng.randint(1, 4))).lstrip("0") or "7"
        kind = rng.choice(["threads", "budget", "budgets", "steps", "huge threads", "huge budget"])
        if kind == "huge threads":
            value = str(rng.randint(10**5, 10**12))
        elif kind == "huge budget":
            value = rng.choice(["9" * rng.randint(16, 40), "1e" + str(rng.randint(309, 999)), "inf", "-" + d]) + \
                rng.choice(["", "MB", "GiB", "%"])
        else:
            value = rng.choice(spell)(d) + (rng.choice(["MB", "KiB", ""]) if kind == "budget" else "")
        argv = {"threads": [*BENCH, "--threads", value], "huge threads": ["eval", "text", "--threads", value],
                "budget": [*GEN, "--stream", "--memory-budget", value],
                "budgets": ["bench", "video-dit-micro", "--stream", "--budgets", value + "%", "--work", "{w}/sb"],
                "steps": [*GEN, "--steps", value],
                "huge budget": [*GEN, "--stream", "--memory-budget", value] if not value.endswith("%") else
                ["bench", "video-dit-micro", "--stream", "--budgets", value, "--work", "{w}/sb"]}[kind]
        rows.append((f"generated number {i}: {kind} {value!r}", argv))
    return rows


def _missing_files(n: int) -> list[tuple[str, list[str]]]:
    rng = random.Random(1314)
    rows = []
    for i in range(n):
        name = "".join(rng.choice(string.ascii_lowercase + string.digits + "-_") for _ in range(rng.randint(1, 12)))
        argv = rng.choice([["validate", f"{{w}}/{name}"], [*GEN, "--runtime", "onnxruntime", "--artifacts", f"{{w}}/{name}"],
                           ["export", f"./{name}/", "--out", "{w}/out"], ["bench", f"{{w}}/{name}/m", "--merge", "tome:r=2"]])
        rows.append((f"missing file {i}: {name}", argv))
    return rows


def _world(root: Path) -> Path:
    """The scratch folder with what the rows point at."""
    w = root / "w"
    w.mkdir()
    (w / "notes.txt").write_text("the user's notes")
    (w / "mine").mkdir()
    (w / "mine" / "photo.jpg").write_bytes(b"jpeg")
    (w / "mine.gif").mkdir()
    (w / "userwork" / "r0").mkdir(parents=True)
    (w / "userwork" / "r0" / "keep.txt").write_text("keep")
    (w / "model").mkdir()
    (w / "model" / "config.json").write_text(json.dumps({"model_type": "vit"}))
    _diffusers_folders(w)
    _with_manifest(w / "list-manifest", [1, 2, 3])
    _with_manifest(w / "empty-manifest", {})
    fake_export(w / "no-format", artifacts=[{"part": "model", "path": "model.onnx", "sha256": "0"}])
    (w / "bad-json").mkdir()
    (w / "bad-json" / "manifest.json").write_text("{not json")
    fake_export(w / "absolute-path", artifacts=[{"format": "onnx", "part": "model", "path": str(w / "notes.txt"),
                                                 "sha256": "0"}])
    fake_export(w / "dotdot-path", artifacts=[{"format": "onnx", "part": "model", "path": "../notes.txt",
                                               "sha256": "0"}])
    changed = fake_export(w / "changed")
    (changed / "model.onnx").write_bytes(b"changed after export")
    no_text = fake_video_export(w / "no-text-split")  # a split export of a model without text encoder (micro)
    _as_split_without_text_encoder(no_text)
    video = fake_video_export(w / "video")
    (video / "denoiser_tdtm.onnx").write_bytes((video / "denoiser_tdtm.onnx").read_bytes()[:40])
    _round3(w)
    return w


def _diffusers_folders(w: Path) -> None:
    """Diffusers folders tomobile must refuse (configs only: each is refused before weights are read)."""
    wan = {"_class_name": "WanTransformer3DModel", "patch_size": [1, 2, 2], "num_attention_heads": 2,
           "attention_head_dim": 12, "in_channels": 4, "out_channels": 4, "text_dim": 8, "freq_dim": 8, "ffn_dim": 8,
           "num_layers": 1, "rope_max_seq_len": 32}
    folders = {"wan-pipe-empty/model_index.json": {"_class_name": "WanPipeline", "transformer": [None, None]},
               "cogvideo-transformer/config.json": {"_class_name": "CogVideoXTransformer3DModel"},
               "cogvideo-pipe/model_index.json": {"_class_name": "CogVideoXPipeline"},
               "wan-no-weights/config.json": wan,
               "wan-i2v/config.json": {**wan, "image_dim": 16, "added_kv_proj_dim": 24},
               "ltx-patch2/config.json": {"_class_name": "LTXVideoTransformer3DModel", "patch_size": 2},
               "wan-pipe-ltx/model_index.json": {"_class_name": "WanPipeline"},
               "wan-pipe-ltx/transformer/config.json": {"_class_name": "LTXVideoTransformer3DModel"}}
    for name, config in folders.items():
        (w / name).parent.mkdir(parents=True, exist_ok=True)
        (w / name).write_text(json.dumps(config))
    (w / "wan-pipe-empty" / "vae").mkdir()
def _round3(w: Path) -> None:
    """Issue 33's inputs: DiffRate files, a deep manifest, a split part with an edited sha256, UNets."""
    from tomobile.graphs.models.sd_unet import SD_TINY, seeded_unet

    rates = {"1e400": "[65, 60, 50, 1e400]", "nan": "[65, NaN, 50, 40]", "65.5": "[65.5, 60, 50, 40]",
             "nested": "[[65], 60, 50, 40]"}
    for name, prune in rates.items():
        (w / f"dr-{name}.json").write_text(json.dumps({"M": {"1": {"prune_kept_num": prune,
                                                                    "merge_kept_num": "[65, 55, 45, 30]"}}}))
    (w / "dr-top-array.json").write_text("[1, 2]")
    (w / "dr-model-array.json").write_text(json.dumps({"M": [1]}))
    _with_manifest(w / "nested-manifest", None)
    (w / "nested-manifest" / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    io = {"inputs": [{"name": "pixel_values", "shape": [1, 3, 32, 32]}], "outputs": [{"name": "logits", "shape": [1, 10]}]}
    fake_export(w / "split-sha", split={"sequences": {"model": ["p"]}, "parts": [
        {"name": "p", **io, "files": {"onnx": {"path": "model.onnx", "sha256": "0" * 64, "total_bytes": 15}}}]})
    seeded_unet(SD_TINY).save_pretrained(w / "unet", safe_serialization=True)
    deep = {**SD_TINY, "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
            "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D")}
    seeded_unet(deep).save_pretrained(w / "unet-deep", safe_serialization=True)  # no attention at downsample 1


def _as_split_without_text_encoder(folder: Path) -> None:
    """A fake export with a one-part split list and no text encoder, as video-dit-micro's split is."""
    manifest = json.loads((folder / "manifest.json").read_text())
    art = next(a for a in manifest["artifacts"] if a["part"] == "denoiser")
    io = manifest["parts"]["denoiser"]
    size = (folder / art["path"]).stat().st_size
    manifest["split"] = {"sequences": {"denoiser": ["denoiser"]}, "parts": [
        {"name": "denoiser", "inputs": io["inputs"], "outputs": io["outputs"],
         "files": {"onnx": {"path": art["path"], "sha256": art["sha256"], "bytes": size,
                            "total_bytes": size}}}]}
    for a in [a for a in manifest["artifacts"] if a["part"] == "text_encoder"]:
        (folder / a["path"]).unlink()
        manifest["artifacts"].remove(a)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _with_manifest(folder: Path, data) -> None:
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps(data))


def _snapshot(root: Path) -> dict[str, tuple]:
    tree = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(dirpath) / name
            st = path.lstat()
            tree[str(path.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return tree


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli-errors")
    w = _world(root)
    ro = root / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    if os.access(ro, os.W_OK):  # root may write in a 0555 folder; the kernel refuses it in /sys
        ro = Path("/sys")
    yield {"w": w, "ro": ro}
    (root / "ro").chmod(0o755)


def _argv(row: list[str], world: dict[str, Path]) -> list[str]:
    return [a.format(w=world["w"], ro=world["ro"]) for a in row]


def _run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as stop:  # argparse
        return int(stop.code)


@pytest.mark.parametrize("row", ROWS + _garbage_specs(12) + _missing_files(8) + _generated_numbers(24), ids=lambda r: r[0])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(world, monkeypatch, capfd, row):
    _, argv = row
    monkeypatch.chdir(world["w"])
    before = _snapshot(world["w"])
    code = _run(_argv(argv, world))
    err = capfd.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("tomobile: error:"), err
    assert "Traceback" not in err
    assert _snapshot(world["w"]) == before, "the output location changed"
    assert not (world["ro"] / "out").exists()


@pytest.mark.parametrize("argv", [["export", "vit-tiny", "--merge", "tome:r=1_0"], ["validate", "{w}/list-manifest"],
                                  ["generate", "x", "--out", "{w}/c.gif", "--guidance", "nan"],
                                  # SD runs printed diffusers' torchao import line before the error (issue 33 item 20)
                                  ["export", "sd-unet-tiny", "--merge", "tomesd:ratio=0.5,sx=17,sy=17", "--out", "{w}/o"]])
def test_real_process_prints_one_line_and_no_traceback(world, argv):
    before = _snapshot(world["w"])
    proc = subprocess.run([sys.executable, "-m", "tomobile.cli", *_argv(argv, world)], capture_output=True,
                          text=True, cwd=world["w"])
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and proc.stderr.startswith("tomobile: error:")
    assert _snapshot(world["w"]) == before


def test_quiet_goes_after_the_subcommand_and_version_prints(capsys):
    from tomobile.cli.main import build_parser

    assert _run(["models", "-q"]) == 0 and "vit-tiny" in capsys.readouterr().out
    assert _run(["--version"]) == 0 and capsys.readouterr().out.startswith("tomobile ")
    parser = build_parser()
    assert parser.parse_args(["-q", "validate", "d"]).quiet and parser.parse_args(["validate", "d", "-q"]).quiet
    assert not parser.parse_args(["validate", "d"]).quiet
    assert parser.parse_args(["eval", "video"]).runtime == "eager"  # a bare `eval video` runs
