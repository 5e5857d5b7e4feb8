"""Parts that share their weights are stored once per format (export/shared.py), and every reader
follows the shared layout: methods of one .pte, graphs reading one .onnx.data, functions of one
multifunction .mlpackage."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from tomobile.export.output import finalize
from tomobile.export.pipeline import stage_export
from tomobile.export.registry import ExportOptions
from tomobile.export.shared import weight_groups
from tomobile.graphs.models.exportable import Exportable, ModelBundle, TensorSpec
from tomobile.runtime.manifest_reader import decode_manifest
from tomobile.runtime.report import FAIL
from tomobile.runtime.runners import artifact_runner
from tomobile.runtime.runners.coreai import CoreAIRunner
from tomobile.runtime.runners.executorch import ExecuTorchRunner
from tomobile.runtime.validate import validate_dir

WIDTH = 64  # each Linear: 64 x 64 fp32 = 16 KB, past the 1 KB below which ONNX keeps a tensor inline


class Trunk(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = nn.Linear(WIDTH, WIDTH), nn.Linear(WIDTH, WIDTH)


class Variant(Exportable):
    """The same trunk, a different graph per `mode` (as the denoiser variants differ in their merges)."""

    input_specs = (TensorSpec("x", (2, WIDTH)),)
    output_names = ("y",)

    def __init__(self, trunk: Trunk, mode: int) -> None:
        super().__init__()
        self.trunk, self.mode = trunk, mode

    def forward(self, x):
        h = torch.relu(self.trunk.a(x))  # (2, WIDTH)
        if self.mode == 1:
            h = (h + h.flip(0)) * 0.5  # a "merge": rows averaged
        return (self.trunk.b(h),)


def _weight_bytes(trunk: Trunk) -> int:
    return sum(p.numel() * p.element_size() for p in trunk.parameters())


def test_weight_groups_by_identity():
    trunk, other = Trunk(), Trunk()  # `other`: equal values, its own tensors
    parts = {"v0": Variant(trunk, 0), "v1": Variant(trunk, 1), "w": Variant(other, 0), "none": nn.ReLU()}
    assert weight_groups(parts) == {"v0": ("v0", "v1"), "v1": ("v0", "v1")}


@pytest.fixture(scope="module")
def shared_export(tmp_path_factory):
    trunk = Trunk()
    bundle = ModelBundle("toy", {"v0": Variant(trunk, 0).eval(), "v1": Variant(trunk, 1).eval()})
    out = tmp_path_factory.mktemp("shared") / "toy"
    staging, manifest = stage_export(bundle, ["onnx", "executorch", "coreml", "coreai"], out, ExportOptions(), progress=False)
    finalize(staging)
    return out, manifest, _weight_bytes(trunk)


def test_manifest_names_the_shared_files(shared_export):
    folder, manifest, _ = shared_export
    got = {(a["format"], a["part"]): (a["path"], a.get("method"), a.get("function"), a.get("weights", {}).get("path"))
           for a in manifest["artifacts"]}
    assert got == {("onnx", "v0"): ("v0.onnx", None, None, "v0.onnx.data"),
                   ("onnx", "v1"): ("v1.onnx", None, None, "v0.onnx.data"),
                   ("executorch", "v0"): ("v0.pte", "v0", None, None),
                   ("executorch", "v1"): ("v0.pte", "v1", None, None),
                   ("coreml", "v0"): ("v0.mlpackage", None, "v0", None),
                   ("coreml", "v1"): ("v0.mlpackage", None, "v1", None),
                   ("coreai", "v0"): ("v0.aimodel", None, "v0", None),
                   ("coreai", "v1"): ("v0.aimodel", None, "v1", None)}
    assert manifest["weight_groups"] == {"v0": {"parts": ["v0", "v1"], "weights": {
        "onnx": "v0.onnx.data", "executorch": "v0.pte", "coreml": "v0.mlpackage", "coreai": "v0.aimodel"}}}
    assert json.loads((folder / "manifest.json").read_text())["weight_groups"] == manifest["weight_groups"]
    assert not any((folder / f"v1{suffix}").exists() for suffix in (".pte", ".mlpackage", ".aimodel"))


def test_export_prints_one_line_per_shared_file(shared_export, capsys):
    from tomobile.cli.cmd_export import print_written

    folder, manifest, _ = shared_export
    print_written(decode_manifest(folder, manifest).artifacts, folder)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1].rsplit("/", 1)[-1] for line in lines] == ["v0.onnx", "v1.onnx", "v0.pte", "v0.mlpackage",
                                                                     "v0.aimodel"]
    assert lines[2].endswith("executorch, fp32; 2 methods: v0, v1)") and lines[4].endswith("2 functions: v0, v1)")
    assert "+ v0.onnx.data" in lines[1]


def test_each_format_writes_the_weights_once(shared_export):
    """Two copies would be 2x the weights: every store stays under 1.5x one copy."""
    folder, _, weights = shared_export
    matrices = 2 * WIDTH * WIDTH * 4  # the biases (256 bytes) stay in the graphs
    assert matrices <= (folder / "v0.onnx.data").stat().st_size < 1.5 * weights
    assert all((folder / g).stat().st_size < weights / 4 for g in ("v0.onnx", "v1.onnx"))  # graphs only
    assert (folder / "v0.pte").stat().st_size < 1.5 * weights
    blobs = sum(p.stat().st_size for p in (folder / "v0.mlpackage").rglob("weight.bin"))
    assert weights <= blobs < 1.5 * weights
    asset = sum(p.stat().st_size for p in (folder / "v0.aimodel").rglob("*") if p.is_file())
    assert weights <= asset < 1.5 * weights


def test_validate_checks_every_variant(shared_export):
    folder, _, _ = shared_export
    report = validate_dir(folder, progress=False)
    rows = {(c.artifact, c.case) for c in report.checks}
    assert {("v0.onnx", "seeded"), ("v1.onnx", "seeded"), ("v0.pte:v0", "seeded"), ("v0.pte:v1", "seeded"),
            ("v0.mlpackage:v0", "spec"), ("v0.mlpackage:v1", "spec"), ("v0.aimodel:v0", "seeded"),
            ("v0.aimodel:v1", "seeded")} <= rows
    assert not [c for c in report.checks if c.status == FAIL]


def test_runners_follow_the_method(shared_export):
    """The variants differ: a reader that ran the default method (or the first) for both would
    give v0's output for v1. Both methods come from one loaded Program."""
    folder, manifest, _ = shared_export
    x = np.random.default_rng(0).standard_normal((2, WIDTH)).astype(np.float32)
    artifacts = decode_manifest(folder, manifest).artifacts
    entries = {a.part: a for a in artifacts if a.format == "executorch"}
    r0, r1 = (artifact_runner(folder, entries[p]) for p in ("v0", "v1"))
    assert r0.program is r1.program
    y0, y1 = r0.run([x])[0], r1.run([x])[0]
    assert not np.allclose(y0, y1)
    with pytest.raises(KeyError):  # ExecuTorch: the program has no such method
        ExecuTorchRunner(folder / "v0.pte")  # no `forward` in a shared program
    onnx = {a.part: artifact_runner(folder, a) for a in artifacts if a.format == "onnx"}
    np.testing.assert_allclose(onnx["v0"].run([x])[0], y0, atol=1e-5)
    np.testing.assert_allclose(onnx["v1"].run([x])[0], y1, atol=1e-5)
    core = {a.part: artifact_runner(folder, a) for a in artifacts if a.format == "coreai"}
    assert core["v0"]._asset is core["v1"]._asset  # one loaded asset, a function per variant
    np.testing.assert_allclose(core["v0"].run([x])[0], y0, atol=1e-5)
    np.testing.assert_allclose(core["v1"].run([x])[0], y1, atol=1e-5)
    with pytest.raises(Exception, match="no function 'main'"):
        CoreAIRunner(folder / "v0.aimodel")  # no `main` in a shared asset
    for runner in core.values():
        runner.close()


def test_split_parts_share_one_weights_file_per_block(micro_split_export):
    """--split blocks: a block's plain and merged parts read one .ptd (methods of one .pte) and one
    .onnx.data, and no per-variant copy of the weights is left beside them."""
    manifest = json.loads((micro_split_export / "manifest.json").read_text())
    groups = manifest["weight_groups"]
    assert groups["dit_temporal00"] == {"parts": ["dit_temporal00", "dit_temporal00_tdtm"], "weights": {
        "onnx": "dit_temporal00.onnx.data", "executorch": "dit_temporal00.ptd"}}
    assert groups["dit_spatial00_tome"]["parts"] == ["dit_spatial00_tome", "dit_spatial00_tdtm_tome"]
    et = {a["part"]: a for a in manifest["artifacts"] if a["format"] == "executorch"}
    assert (et["dit_temporal00_tdtm"]["path"], et["dit_temporal00_tdtm"]["method"],
            et["dit_temporal00_tdtm"]["weights"]["path"]) == ("dit_temporal00.pte", "dit_temporal00_tdtm",
                                                             "dit_temporal00.ptd")
    named = {a["path"] for a in manifest["artifacts"]} | {a["weights"]["path"] for a in manifest["artifacts"]
                                                          if "weights" in a}
    on_disk = {p.name for p in micro_split_export.iterdir() if p.suffix in (".data", ".ptd", ".pte", ".onnx")}
    assert on_disk == named  # e.g. no dit_temporal00_tdtm.onnx.data or .ptd left over


def test_shared_ptd_keeps_per_method_constants_in_the_program(micro_split_export):
    """The .ptd keys non-delegated tensors by name across methods: the TDTM part's rope tables
    (2 frames) and the plain part's (4 frames) share a name, so they must stay in the .pte, or
    one method's load fails (InvalidExternalData) or reads the other's values. Both methods load
    from the one .ptd and differ as their graphs do."""
    from tomobile.runtime.runners.executorch import ExecuTorchRunner

    data = np.load(micro_split_export / "test_vectors" / "dit_temporal00.npz")
    manifest = json.loads((micro_split_export / "manifest.json").read_text())
    x = [data[f"seeded.input.{i['name']}"] for i in manifest["parts"]["dit_temporal00"]["inputs"]]
    outs = {}
    for method in ("dit_temporal00", "dit_temporal00_tdtm"):
        runner = ExecuTorchRunner(micro_split_export / "dit_temporal00.pte", micro_split_export / "dit_temporal00.ptd",
                                  method)
        outs[method] = runner.run(x)[0]
    ref = [data[k] for k in data.files if k.startswith("seeded.output.")][0]
    np.testing.assert_allclose(outs["dit_temporal00"], ref, atol=1e-4)
    assert outs["dit_temporal00_tdtm"].shape == outs["dit_temporal00"].shape
    assert not np.allclose(outs["dit_temporal00_tdtm"], outs["dit_temporal00"])
