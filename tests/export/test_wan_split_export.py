"""`--split blocks` on a Wan transformer exports part by part (issue 30 item 4): the monolithic
transformer is never lowered (it stays the eager reference), each part's programs are gone before
the next part's are traced, and the chain equals the monolithic transformer within 1e-4, eager
and on ONNX Runtime."""

from __future__ import annotations

import gc
import json
import weakref

import pytest
import torch

pytest.importorskip("diffusers")

from tomobile.cli.main import main  # noqa: E402
from tomobile.graphs.models.wan import WanTransformer  # noqa: E402
from tomobile.graphs.models.wan_parts import WanBlockPart, WanEmbedPart, WanHeadPart  # noqa: E402


class ExportObserver:
    """torch.export.export wrapped: which module each trace was of, and how many programs of other
    modules were still alive when it started."""

    def __init__(self, export) -> None:
        self.export, self.traced, self.alive_others = export, [], []
        self.programs: list[tuple[int, weakref.ref]] = []

    def __call__(self, module, args, *rest, **kwargs):
        gc.collect()
        others = [ref for owner, ref in self.programs if owner != _block_of(module) and ref() is not None]
        self.alive_others.append(len(others))
        self.traced.append(module)
        program = self.export(module, args, *rest, **kwargs)
        self.programs.append((_block_of(module), weakref.ref(program)))
        return program


def _block_of(module) -> int:
    """The weights a traced module holds: a block's plain and TDTM parts share them (one weight group)."""
    return next(module.parameters()).data_ptr()


def test_parts_export_one_at_a_time_and_chain_to_the_transformer(tmp_path, monkeypatch):
    observer = ExportObserver(torch.export.export)
    monkeypatch.setattr(torch.export, "export", observer)
    out = tmp_path / "split"
    assert main(["-q", "export", "wan-tiny", "--merge", "tdtm", "--size", "32x48", "--frames", "9", "--split", "blocks",
                 "--format", "onnx", "--out", str(out)]) == 0
    kinds = [type(m) for m in observer.traced]
    assert WanTransformer not in kinds, "the monolithic transformer was lowered"
    assert kinds.count(WanEmbedPart) == kinds.count(WanHeadPart) == 1 and kinds.count(WanBlockPart) == 4
    assert max(observer.alive_others) == 0, "an earlier part's programs were alive when the next was traced"

    manifest = json.loads((out / "manifest.json").read_text())
    assert {a["part"] for a in manifest["artifacts"]} == {p["name"] for p in manifest["split"]["parts"]}
    assert manifest["split"]["reference"] == "eager" and {"transformer", "transformer_tdtm"} <= set(manifest["parts"])
    assert (out / "test_vectors" / "transformer.npz").is_file()
    chains = {c["artifact"]: c for c in manifest["validation"]["checks"] if c["artifact"].startswith("chain")}
    assert set(chains) == {f"chain {v} ({how})" for v in ("transformer", "transformer_tdtm")
                           for how in ("eager parts", "onnx")}
    assert all(c["status"] == "pass" and c["max_abs_error"] <= 1e-4 for c in chains.values()), chains
    assert manifest["validation"]["passed"]
