"""tomobile eval text: the pydoc corpus, retrieval accuracy and the report, with stand-in encoders;
the real MiniLM run is marked slow."""

from __future__ import annotations

import pytest
import torch

from tomobile.runtime.text_eval import evaluate_length, format_table, help_topic_pairs, top1_accuracy


def test_help_topics_give_distinct_query_document_pairs():
    pairs = help_topic_pairs()
    assert len(pairs) >= 40
    assert len({p.document for p in pairs}) == len(pairs)
    for p in pairs:
        assert len(p.query) >= 20 and len(p.document) >= 20
        assert "****" not in p.query and not p.document.startswith(p.query)
    assert help_topic_pairs(limit=5) == pairs[:5]


def test_top1_accuracy_counts_own_document_wins():
    docs = torch.eye(4)
    queries = torch.eye(4)[[0, 1, 3, 2]]  # the last two find each other's document
    assert top1_accuracy(queries, docs) == 0.5


def test_evaluate_length_compares_every_r_against_r0():
    gen = torch.Generator().manual_seed(0)
    proj = torch.randn(50, 8, generator=gen)

    def encoder(noise: float):
        def run(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            e = (proj[ids] * mask.unsqueeze(-1)).sum(1) + noise
            return e / e.norm(dim=-1, keepdim=True)
        return run

    def tokenize(texts, seq_len):
        ids = torch.tensor([[hash(w) % 50 for w in (t.split() + ["pad"] * seq_len)[:seq_len]] for t in texts])
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    pairs = help_topic_pairs(limit=6)
    rows = evaluate_length({0: encoder(0.0), 2: encoder(0.5)}, {0: 16, 2: 10}, tokenize, pairs, 16,
                           runs=2, threads=1, progress=False)
    assert [(r.r, r.tokens_out) for r in rows] == [(0, 16), (2, 10)]
    assert rows[0].cosine_mean == pytest.approx(1.0) and rows[0].speedup == 1.0
    assert rows[1].cosine_mean < 1.0 and 0.0 <= rows[1].top1 <= 1.0
    from tomobile.runtime.text_eval import TextEvalReport

    table = format_table(TextEvalReport("m", len(pairs), 1, rows))
    assert table.count("\n| 16 |") == 2


def test_each_runtime_is_timed_in_its_own_round_robin(monkeypatch):
    """A call is timed right after a call of the same runtime, never after another runtime's (an ONNX
    Runtime pool that spins after its run slowed the next call: merged ORT showed 0.63x, ExecuTorch
    r = 0 looked slow)."""
    import tomobile.runtime.text_eval as text_eval

    groups = []

    def record(fns, runs, **kwargs):
        groups.append(sorted(fns))
        return {key: [0.01] * runs for key in fns}

    monkeypatch.setattr(text_eval, "round_robin", record)
    monkeypatch.setattr(text_eval, "_exported_fns", lambda folders, runtimes, inputs, threads: {
        (rt, r): (lambda: None) for rt in runtimes for r in folders})
    ids = torch.zeros(2, 8, dtype=torch.long)

    def encoder(ids, mask):
        return torch.nn.functional.normalize(torch.ones(ids.shape[0], 4), dim=-1)

    evaluate_length({0: encoder, 2: encoder}, {0: 8, 2: 6}, lambda texts, n: {"input_ids": ids[:len(texts)],
                    "attention_mask": torch.ones_like(ids[:len(texts)])}, help_topic_pairs(limit=2), 8, runs=3,
                    threads=1, progress=False, folders={0: None, 2: None}, runtimes=("onnxruntime", "executorch"))
    assert groups == [[("eager", 0), ("eager", 2)], [("onnxruntime", 0), ("onnxruntime", 2)],
                      [("executorch", 0), ("executorch", 2)]]


def test_pitome_settings_reproduce_tome_token_counts_per_layer():
    """PiToMe's rows run at ToMe's tokens per layer (equal FLOPs): its plan on a padded 6-layer
    encoder gives exactly ToMe's counts for every r and length."""
    from tomobile.graphs.methods.registry import make_plan
    from tomobile.runtime.text_eval import setting_configs

    for seq_len, rs in ((128, [4, 8, 16]), (256, [2, 8, 32]), (16, [1, 2])):
        settings = setting_configs(seq_len, 6, rs, ("tome", "pitome"))
        assert list(settings)[0] == ("none", 0) and len(settings) == 1 + 2 * len(rs)
        for r in rs:
            (tome, counts), (pitome, same) = settings["tome", r], settings["pitome", r]
            assert counts == same and counts[1] == seq_len - r and tome.method == "tome"
            plan = make_plan(pitome, 6, seq_len, class_token=True, padded=True)
            assert plan.method == "pitome" and plan.tokens == counts, (seq_len, r)


@pytest.mark.slow
def test_minilm_r2_stays_close_to_unmerged():
    from tomobile.runtime.text_eval import run_text_eval

    report = run_text_eval([64], [2], limit=4, runs=1, threads=1, progress=False)
    merged = next(r for r in report.rows if r.r == 2)
    assert merged.tokens_out == 64 - 2 * 6
    assert merged.cosine_mean > 0.9
