"""Every order of every subset of formats gives the same artifacts (issue 13, bug 1).

The exporters share one traced program per part; ExecuTorch lowering used to change it in place,
so `--format executorch,onnx` crashed while `onnx,executorch` worked.
"""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

from fakes import Tiny, tiny_bundle

from tomobile.export.output import finalize
from tomobile.export.pipeline import _programs, stage_export
from tomobile.export.registry import ExportOptions

FORMATS = ("onnx", "coreml", "executorch")


def _digest(path: Path) -> str:
    """Bytes of .onnx/.pte; for .mlpackage the model spec and weights (its Manifest.json holds
    fresh random identifiers on every save, and the spec's map order varies)."""
    if path.suffix != ".mlpackage":
        return hashlib.sha256(path.read_bytes()).hexdigest()
    import coremltools as ct

    h = hashlib.sha256(str(ct.utils.load_spec(str(path))).encode())
    for weights in sorted(path.rglob("weights/*")):
        h.update(weights.read_bytes())
    return h.hexdigest()


def _export(formats: tuple[str, ...], out: Path) -> dict[str, str]:
    staging, manifest = stage_export(tiny_bundle(), list(formats), out, ExportOptions(), progress=False)
    finalize(staging)
    return {a["format"]: _digest(out / a["path"]) for a in manifest["artifacts"]}


def test_program_copies_are_independent_of_what_lowering_did():
    from tomobile.export.passes import run_program_passes

    wrapper = Tiny().eval()
    get = _programs(wrapper, wrapper.example_inputs())
    before = get("fp32")
    run_program_passes(get("fp32"))  # folds constants into the program it was given
    after = get("fp32")
    assert str(after.graph) == str(before.graph)
    assert set(after.constants) == set(before.constants) and after.graph_signature == before.graph_signature


def test_every_order_of_every_subset_gives_the_same_artifacts(tmp_path: Path):
    # An exporter's artifact can only depend on the exporters that ran before it in the same
    # export, so each ordered subset is a prefix of one of the 6 orders of all three formats:
    # running those 6 (and each format alone, the reference) covers all 15 ordered subsets.
    alone = {f: _export((f,), tmp_path / f"alone-{f}")[f] for f in FORMATS}
    for i, order in enumerate(itertools.permutations(FORMATS)):
        got = _export(order, tmp_path / f"order-{i}")
        assert got == alone, f"--format {','.join(order)} differs from each format exported alone"

