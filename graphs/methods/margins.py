"""Decision margins of the merge, and seeded validation inputs whose merge choices are clear.

A merge decides by comparing scores: which destination a source joins (its best against its
runner-up), which sources merge at all (the r-th best against the (r+1)-th), and, for PiToMe, the
order of tokens by energy. Where eager's chosen and runner-up scores lie a few ulp apart, every
backend decides by its own rounding of the activations before them (no spelling of the comparison
can fix that), and a flipped choice moves the outputs far beyond the fp32 threshold although both
graphs are right. Exact ties are not the problem: graphs/methods/merge.py makes them exact on every backend
(`snap_duplicates`, lowest index wins).

So the seeded validation inputs are drawn until every merge decision eager takes on them is
decided by at least MIN_MARGIN (`draw_clear_inputs`): seed 0, then 1, 2, ... The probe that
measures the margins is explicit and reversible: `record_margins()` is a context manager, the
merge ops call `note_partner` / `note_cut` / `note_order`, which do nothing outside it and nothing
while a graph is traced, so exported graphs hold no trace of it. The margins are read on eager
fp32, the reference every artifact (ONNX Runtime, ExecuTorch, Core AI, Core ML) is compared with,
so every format is checked on the same inputs. A wrong artifact still fails: the inputs are chosen
by eager alone, never by an artifact's outputs.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

import torch

from .constants import EXACT_SCORES

# Smallest gap (in score units: cosine similarity, or the method's score) between eager's choice and
# its runner-up that the seeded inputs must keep at every merge decision. fp32 rounding of a cosine
# is ~6e-8; eager and exported graphs drift apart by up to a few 1e-6 by the third block of
# video-dit-tiny (docs/coreai.md), so 1e-5 leaves a factor of a few above both.
MIN_MARGIN = 1e-5
# Seeds tried before giving up and keeping the seed with the widest smallest gap (reported as such),
# and the eager time after which no further seed is drawn: a big model (sd15-unet, ~20k decisions per
# call, tens of seconds per eager call here) is not held up for minutes; the seed kept is recorded.
MAX_DRAWS = 48
DRAW_SECONDS = 60.0


@dataclass(frozen=True)
class NearTie:
    """One decision eager took by less than MIN_MARGIN, where `forced_flips` can take it the other
    way: at `site` (a MarginLog label, "spatial.partner#2"), row `index` (a partner: the flat
    (batch, source) index; a cut: the batch row)."""

    site: str
    index: int
    gap: float


@dataclass
class MarginLog:
    """Smallest gap per merge site (site label -> (gap, decisions)); sites are numbered per call.
    `near`: the partner and cut decisions below MIN_MARGIN, each one that a replay can flip."""

    sites: dict[str, tuple[float, int]] = field(default_factory=dict)
    near: list[NearTie] = field(default_factory=list)

    def add(self, kind: str, gaps: torch.Tensor, rows: torch.Tensor | None = None) -> None:
        label = f"{kind}#{sum(1 for s in self.sites if s.startswith(kind + '#'))}"
        smallest = float(gaps.min()) if gaps.numel() else math.inf
        self.sites[label] = (smallest, int(gaps.numel()))
        if rows is not None:
            self.near += [NearTie(label, int(rows[k]), float(gaps[k])) for k in (gaps < MIN_MARGIN).nonzero().flatten()]

    @property
    def smallest(self) -> float:
        return min((g for g, _ in self.sites.values()), default=math.inf)

    @property
    def decisions(self) -> int:
        return sum(n for _, n in self.sites.values())

    def narrowest_site(self) -> str | None:
        return min(self.sites, key=lambda s: self.sites[s][0]) if self.sites else None


_LOG: ContextVar[MarginLog | None] = ContextVar("tomobile_margin_log", default=None)


@contextlib.contextmanager
def record_margins() -> Iterator[MarginLog]:
    """Record the merge decisions' margins of eager calls made inside this block."""
    log = MarginLog()
    token = _LOG.set(log)
    try:
        yield log
    finally:
        _LOG.reset(token)


def _active() -> MarginLog | None:
    log = _LOG.get()
    return None if log is None or torch.compiler.is_exporting() else log


def _gaps(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """first - second in float64, inf where both are the same exact constant (an exact tie)."""
    gap = first.double() - second.double()
    exact = torch.zeros_like(gap, dtype=torch.bool)
    for c in EXACT_SCORES:  # exact constants on every backend: equal ones are exact ties, broken by index
        exact |= (first == c) & (second == c)
    return torch.where(exact, torch.full_like(gap, math.inf), gap)


@torch.no_grad()
def note_partner(kind: str, scores: torch.Tensor, used: torch.Tensor) -> None:
    """Each source's best destination against its runner-up. scores (B, Ta, Tb); used (B, Ta) 0/1:
    the sources whose destination matters (the merged ones)."""
    log = _active()
    if log is None or scores.shape[-1] < 2:
        return
    top = scores.topk(2, dim=-1).values  # (B, Ta, 2)
    gaps = _gaps(top[..., 0], top[..., 1]).reshape(-1)  # (B * Ta,)
    rows = (used.reshape(-1) > 0.5).nonzero().flatten()  # the merged sources' flat (batch, source) rows
    log.add(kind + ".partner", gaps[rows], rows)


@torch.no_grad()
def note_cut(kind: str, values: torch.Tensor, r: int) -> None:
    """Which r of N values are the largest: the r-th largest against the (r+1)-th. values (B, N)."""
    log = _active()
    if log is None or not 0 < r < values.shape[-1]:
        return
    top = values.topk(r + 1, dim=-1).values  # (B, r + 1)
    log.add(kind + ".cut", _gaps(top[:, r - 1], top[:, r]), torch.arange(values.shape[0]))


@dataclass
class _Forcing:
    flips: frozenset[tuple[str, int]]
    calls: dict[str, int] = field(default_factory=dict)

    def rows(self, kind: str) -> list[int]:
        """The rows to flip at this call of `kind`, numbered as MarginLog numbers its sites."""
        n = self.calls.get(kind, 0)
        self.calls[kind] = n + 1
        return sorted(i for site, i in self.flips if site == f"{kind}#{n}")


_FORCE: ContextVar[_Forcing | None] = ContextVar("tomobile_forced_flips", default=None)


@contextlib.contextmanager
def forced_flips(ties: Iterable[NearTie]) -> Iterator[None]:
    """Eager calls inside this block take each of `ties` the other way: a partner its runner-up
    destination, a cut the token just below it instead of the one just above. That is what a backend
    computes when its rounding resolves the near-tie the other way; validation replays it to show
    that an artifact's difference is that flip and nothing else (export/near_ties.py). Inactive while
    a graph is traced, as the notes are."""
    token = _FORCE.set(_Forcing(frozenset((t.site, t.index) for t in ties)))
    try:
        yield
    finally:
        _FORCE.reset(token)


def _forcing() -> _Forcing | None:
    forcing = _FORCE.get()
    return None if forcing is None or torch.compiler.is_exporting() else forcing


@torch.no_grad()
def force_partner(kind: str, scores: torch.Tensor) -> torch.Tensor:
    """scores (B, Ta, Tb), with the best and runner-up scores of each forced row swapped (so the
    runner-up wins); unchanged outside forced_flips. Called where note_partner's site is counted."""
    forcing = _forcing()
    if forcing is None or scores.shape[-1] < 2:
        return scores
    rows = forcing.rows(kind + ".partner")
    if not rows:
        return scores
    scores = scores.clone()
    flat = scores.view(-1, scores.shape[-1])  # (B * Ta, Tb), a view
    for i in rows:
        first, second = flat[i].topk(2).indices.tolist()
        flat[i, first], flat[i, second] = flat[i, second].clone(), flat[i, first].clone()
    return scores


@torch.no_grad()
def force_cut(kind: str, values: torch.Tensor, r: int) -> torch.Tensor:
    """values (B, N), with the r-th and (r+1)-th largest of each forced batch row swapped (the other
    token is cut); unchanged outside forced_flips. Called where note_cut's site is counted."""
    forcing = _forcing()
    if forcing is None or not 0 < r < values.shape[-1]:
        return values
    rows = forcing.rows(kind + ".cut")
    if not rows:
        return values
    values = values.clone()
    for b in rows:
        order = values[b].topk(r + 1).indices.tolist()
        above, below = order[r - 1], order[r]
        values[b, above], values[b, below] = values[b, below].clone(), values[b, above].clone()
    return values


@torch.no_grad()
def note_order(kind: str, values: torch.Tensor) -> None:
    """A full descending order matters (PiToMe's energy order): every adjacent pair. values (B, N)."""
    log = _active()
    if log is None or values.shape[-1] < 2:
        return
    ordered = values.sort(dim=-1, descending=True).values  # (B, N)
    log.add(kind + ".order", _gaps(ordered[:, :-1], ordered[:, 1:]).reshape(-1))


@dataclass(frozen=True)
class Draw:
    """The seeded inputs kept, and how clear their merge decisions are in eager."""

    seed: int
    inputs: tuple[torch.Tensor, ...]
    outputs: tuple[torch.Tensor, ...]
    smallest_gap: float  # inf: the model takes no data-dependent merge decision
    decisions: int
    site: str | None  # where the smallest gap is
    draws: int
    min_margin: float = MIN_MARGIN

    @property
    def clear(self) -> bool:
        return self.smallest_gap >= self.min_margin

    def to_json(self) -> dict:
        gap = self.smallest_gap if math.isfinite(self.smallest_gap) else None
        return {"seed": self.seed, "smallest_gap": gap, "min_margin": self.min_margin, "decisions": self.decisions,
                "site": self.site, "draws": self.draws, "clear": self.clear}


def measure(model: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple[tuple[torch.Tensor, ...], MarginLog]:
    """Eager outputs of `model` on `inputs` and the margins of every merge decision it took."""
    with torch.no_grad(), record_margins() as log:
        outputs = model(*inputs)
    return outputs, log


def case_margin(found: MarginLog, min_margin: float = MIN_MARGIN) -> dict:
    """The manifest's record of one fixed case (real inputs: not redrawn), as `Draw.to_json`."""
    gap = found.smallest
    return {"smallest_gap": gap if math.isfinite(gap) else None, "min_margin": min_margin,
            "decisions": found.decisions, "site": found.narrowest_site(), "clear": gap >= min_margin}


def draw_clear_inputs(model, min_margin: float = MIN_MARGIN, max_draws: int = MAX_DRAWS,
                      budget_s: float = DRAW_SECONDS) -> Draw:
    """The first seed 0, 1, ... whose inputs (`model.example_inputs(seed)`) leave every merge decision
    at least `min_margin` clear in eager; after `max_draws` seeds, or once the draws took `budget_s`
    seconds, the one with the widest smallest gap (`Draw.clear` False). A model without
    data-dependent merges keeps seed 0."""
    best: Draw | None = None
    start = time.monotonic()
    for seed in range(max_draws):
        inputs = model.example_inputs(seed=seed)
        outputs, log = measure(model, inputs)
        draw = Draw(seed, inputs, outputs, log.smallest, log.decisions, log.narrowest_site(), seed + 1, min_margin)
        if best is None or draw.smallest_gap > best.smallest_gap:
            best = draw
        if draw.smallest_gap >= min_margin:
            return draw
        if time.monotonic() - start > budget_s:
            break
    assert best is not None
    return Draw(best.seed, best.inputs, best.outputs, best.smallest_gap, best.decisions, best.site, seed + 1, min_margin)
