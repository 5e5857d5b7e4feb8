"""Loading and closing a Core AI asset again and again (what block streaming does) holds neither
memory nor disk: coreai-core 1.0.0b3 compiles an asset on every load and never unmaps the result,
so each load used to keep the asset's size in RssFile and, as a deleted file, on disk
(runtime/runners/coreai.py `_CoreAIAsset`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tomobile.export.output import finalize
from tomobile.export.pipeline import stage_export
from tomobile.export.registry import ExportOptions
from tomobile.graphs.models.exportable import Exportable, ModelBundle, TensorSpec
from tomobile.runtime.memory import proc_status
from tomobile.runtime.runners.coreai import CoreAIRunner

WIDTH, LAYERS = 1024, 4  # 16.8 MB of fp32 weights


class Trunk(Exportable):
    output_names = ("y",)
    input_specs = (TensorSpec("x", (8, WIDTH)),)

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.layers = nn.ModuleList(nn.Linear(WIDTH, WIDTH) for _ in range(LAYERS))

    def forward(self, x):
        for layer in self.layers:
            x = torch.relu(layer(x))
        return (x,)


@pytest.fixture(scope="module")
def asset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("coreai-memory") / "trunk"
    staging, _ = stage_export(ModelBundle("trunk", {"model": Trunk().eval()}), ["coreai"], out, ExportOptions(),
                              progress=False)
    finalize(staging)
    return out / "model.aimodel"


def _compiled_files() -> set[str]:
    """The compiled-model files this process maps (Core AI's `*.aimodelx/` folders)."""
    return {line.split(None, 5)[5] for line in Path("/proc/self/maps").read_text().splitlines()
            if ".aimodelx/" in line and len(line.split(None, 5)) == 6}


def test_loading_an_asset_again_and_again_holds_no_memory_or_disk(asset: Path):
    x = np.random.default_rng(0).random((8, WIDTH), dtype=np.float32)
    size = sum(f.stat().st_size for f in asset.rglob("*") if f.is_file())
    with CoreAIRunner(asset) as runner:  # warm-up: the runtime's libraries come in once
        expected = runner.run([x])[0]
    files_before = _compiled_files()
    rss_before = proc_status()["RssFile"]
    for _ in range(4):
        with CoreAIRunner(asset) as runner:
            np.testing.assert_array_equal(runner.run([x])[0], expected)
    grown = proc_status()["RssFile"] - rss_before
    assert grown < size / 2, f"RssFile grew {grown / 1e6:.1f} MB over 4 loads of a {size / 1e6:.1f} MB asset"
    new_files = _compiled_files() - files_before
    assert not new_files, f"every load mapped a compiled copy of its own: {sorted(new_files)}"
