"""`tomobile models`: the built-in model names, one a line with a description, then the merge methods."""

from __future__ import annotations

import argparse

from ..graphs.methods.registry import methods
from ..graphs.models.registry import builtin_models


def cmd_models(args: argparse.Namespace) -> int:
    models = builtin_models()
    width = max(len(n) for n in models)
    for name, entry in sorted(models.items()):
        print(f"{name.ljust(width)}  {entry.description}")
    print("\nmerge methods (--merge METHOD:...):")
    table = {n: m for n, m in methods().items() if n != "none"}
    width = max(len(n) for n in table)
    for name, method in table.items():
        print(f"{name.ljust(width)}  {method.summary}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("models", help="list the built-in model names and the merge methods")
    p.set_defaults(handler=cmd_models)
