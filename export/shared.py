"""Parts that share their weights: found by identity, exported once per format.

The video models' denoiser variants (`denoiser`, `_tdtm`, `_tome`, `_tdtm_tome`) wrap one trained
model and differ only in their merge graphs; a split export's merged block parts wrap the same
block as the plain ones. Such parts form a weight group, named after its first part, and each
format that can stores the group's weights once (docs/shared_weights.md):

    executorch  one `<group>.pte`, a method per part (named after it); with --split, one `<group>.ptd`
    onnx        a graph per part (`<part>.onnx`), all reading one `<group>.onnx.data`
    coreml      one multifunction `<group>.mlpackage`, a function per part (iOS 18)

The manifest lists an artifact per part as before; parts of a group name the same file (and
`method` / `function`), or the same `weights` file.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn


def weight_key(module: nn.Module) -> tuple:
    """The storage, shape and dtype of every parameter: equal keys mean the same weights in memory."""
    return tuple((name, p.data_ptr(), tuple(p.shape), p.dtype) for name, p in module.named_parameters())


def weight_groups(parts: Mapping[str, nn.Module]) -> dict[str, tuple[str, ...]]:
    """Part stem -> the stems of every part holding the very same parameter tensors (in `parts`
    order), for groups of two or more; parts without parameters are never grouped."""
    by_key: dict[tuple, list[str]] = {}
    for stem, module in parts.items():
        key = weight_key(module)
        if key:
            by_key.setdefault(key, []).append(stem)
    return {stem: tuple(group) for group in by_key.values() if len(group) > 1 for stem in group}


def weight_group_table(artifacts: list[dict]) -> dict[str, dict]:
    """manifest["weight_groups"]: group name -> its parts and, per format, the file that holds the
    weights (the shared program or package, or the shared data file)."""
    table: dict[str, dict] = {}
    for a in artifacts:
        group = a.get("weight_group")
        if group is None:
            continue
        entry = table.setdefault(group, {"parts": [], "weights": {}})
        if a["part"] not in entry["parts"]:
            entry["parts"].append(a["part"])
        entry["weights"][a["format"]] = a["weights"]["path"] if "weights" in a else a["path"]
    return table
