"""sentence-transformers folders (issue 18, item 8): tomobile's `sentence_embedding` equals what the
sentence-transformers package computes, for Pooling in every supported mode and mix, Dense and
Normalize, on small random folders written by sentence-transformers itself; modules it does not
export are refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tomobile.graphs import MergeConfig
from tomobile.graphs.models.hf_folder import load_local
from tomobile.graphs.models.sentence_modules import SentenceModuleError

st = pytest.importorskip("sentence_transformers", reason="the sentence extra (make test installs it); not in the transformers 4.57 environment")
WORDS = [f"w{i}" for i in range(1195)]
SEQ = 16


def _bert(folder: Path) -> Path:
    from transformers import BertConfig, BertModel, BertTokenizerFast

    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=1200, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(folder)
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    return folder


def _sentence_model(tmp_path: Path, modes, dense: int | None, normalize: bool) -> Path:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize, Pooling, Transformer

    transformer = Transformer(str(_bert(tmp_path / "bert")), max_seq_length=SEQ)
    modules = [transformer, Pooling(32, pooling_mode=modes)]
    width = modules[1].pooling_output_dimension
    if dense:
        torch.manual_seed(1)
        modules.append(Dense(width, dense))
    if normalize:
        modules.append(Normalize())
    out = tmp_path / "st"
    SentenceTransformer(modules=modules, device="cpu").save(str(out))
    return out


@pytest.mark.parametrize("modes,dense,normalize", [
    ("mean", None, False), ("cls", 8, False), ("max", None, True), (("cls", "max", "mean"), None, False),
    ("mean_sqrt_len_tokens", 8, True), (("mean", "cls"), 8, True)])
def test_sentence_embedding_equals_sentence_transformers(tmp_path, modes, dense, normalize):
    from sentence_transformers import SentenceTransformer

    folder = _sentence_model(tmp_path, modes, dense, normalize)
    reference = SentenceTransformer(str(folder), device="cpu").eval()
    wrapper = load_local(folder, MergeConfig(), seq_len=SEQ).parts["model"]
    ids = torch.randint(1000, 1200, (1, SEQ), generator=torch.Generator().manual_seed(2))
    for real in (SEQ, 9):  # all tokens real, and right padding
        mask = (torch.arange(SEQ) < real).long().unsqueeze(0)
        with torch.no_grad():
            want = reference({"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
                             )["sentence_embedding"]
            got = wrapper(ids, mask)[-1]
        assert got.shape == want.shape, (got.shape, want.shape)
        torch.testing.assert_close(got, want, atol=2e-6, rtol=1e-5)


@pytest.mark.parametrize("change,needle", [
    (lambda f: _pool_cfg(f, pooling_mode="weightedmean"), "pooling mode 'weightedmean'"),
    (lambda f: _pool_cfg(f, pooling_mode="lasttoken"), "pooling mode 'lasttoken'"),
    (lambda f: _add_module(f, "sentence_transformers.models.LayerNorm"), "module LayerNorm"),
])
def test_unsupported_modules_are_refused_in_one_line(tmp_path, change, needle):
    folder = _sentence_model(tmp_path, "mean", None, False)
    change(folder)
    with pytest.raises(SentenceModuleError, match=needle) as info:
        load_local(folder, MergeConfig(), seq_len=SEQ)
    assert "\n" not in str(info.value)


def _pool_cfg(folder: Path, **cfg) -> None:
    path = next(folder.glob("*_Pooling")) / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **cfg}))


def _add_module(folder: Path, kind: str) -> None:
    modules = json.loads((folder / "modules.json").read_text())
    modules.append({"idx": len(modules), "name": str(len(modules)), "path": "x", "type": kind})
    (folder / "modules.json").write_text(json.dumps(modules))
