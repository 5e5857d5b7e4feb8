"""`tomobile models`: the built-in model names, one a line with a description."""

from __future__ import annotations

import argparse

from ..graphs.registry import load_builtin_models


def cmd_models(args: argparse.Namespace) -> int:
    models = load_builtin_models()
    width = max(len(n) for n in models)
    for name, entry in sorted(models.items()):
        print(f"{name.ljust(width)}  {entry.description}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("models", help="list the built-in model names")
    p.set_defaults(handler=cmd_models)
