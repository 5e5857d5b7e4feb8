"""ExecuTorch readers hold a weight group's weights once (runtime/runners/xnnpack_options.py): the two
methods of one shared .pte, loaded in one process, add the packed weights once. Each case runs in
a fresh process (the cache is per process) and reads RssAnon from /proc after each method."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn
from wide_model import LAYERS, WIDTH, Wide  # tests/runtime/wide_model.py: the model both memory tests load

from tomobile.export.executorch_format import export_executorch_methods
from tomobile.export.pipeline import _programs
from tomobile.export.registry import ExportOptions, PartInfo


@pytest.fixture(scope="module")
def shared_pte(tmp_path_factory):
    torch.manual_seed(0)
    trunk = nn.ModuleList(nn.Linear(WIDTH, WIDTH) for _ in range(LAYERS))
    parts = {v: Wide(trunk, v == "merged").eval() for v in ("plain", "merged")}
    out = tmp_path_factory.mktemp("wc") / "plain.pte"
    export_executorch_methods({v: _programs(m, m.example_inputs(0)) for v, m in parts.items()},
                              {v: PartInfo(v, ("x",), ("y",)) for v in parts}, out, ExportOptions(backend="xnnpack"))
    return out, sum(p.numel() * 4 for p in trunk.parameters())


_CHILD = """
import json, sys
import numpy as np
from tomobile.runtime.runners.executorch import ExecuTorchRunner
from tomobile.runtime.memory import malloc_trim, proc_status
from tomobile.runtime.runners.xnnpack_options import weight_cache_enabled

def anon():
    malloc_trim()
    return proc_status()["RssAnon"]

x = np.random.default_rng(0).standard_normal((8, {width})).astype(np.float32)
ExecuTorchRunner  # imported: the runtimes' own memory is the base
rows, held, outs = [anon()], [], []
for method in ("plain", "merged"):
    runner = ExecuTorchRunner({path!r}, None, method)
    outs.append(runner.run([x])[0].tolist())
    held.append(runner)
    rows.append(anon())
print(json.dumps({{"rows": rows, "outs": outs, "cache": weight_cache_enabled()}}))
"""


def _load_both(path, cache: bool) -> dict:
    env = {**os.environ, "TOMOBILE_XNNPACK_WEIGHT_CACHE": "1" if cache else "0"}
    out = subprocess.run([sys.executable, "-c", _CHILD.format(width=WIDTH, path=str(path))], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_two_methods_hold_the_weights_once(shared_pte):
    path, weights = shared_pte
    on, off = _load_both(path, cache=True), _load_both(path, cache=False)
    assert on["cache"] and not off["cache"]
    for got in (on, off):  # the first method packs the weights either way: the measurement sees them
        assert got["rows"][1] - got["rows"][0] > 0.8 * weights
    assert off["rows"][2] - off["rows"][1] > 0.8 * weights  # without the cache: packed again
    assert on["rows"][2] - on["rows"][1] < 0.15 * weights  # with it: the same packed copy
    assert on["outs"] == off["outs"]  # bit for bit
    assert not np.allclose(on["outs"][0], on["outs"][1])  # each method ran its own graph
