"""Prequential (test-then-learn) evaluation: before each event, was its item in the user's list?

This is how a streaming recommender meets its users: every list is judged on the very next thing
the user does, and the model learns from that event only afterwards. Every model sees the same
events and the same exclusions (items the user already interacted with).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from schemas.records import Event


class Model(Protocol):
    name: str

    def recommend(self, user_id: str, k: int, exclude: set[str]) -> list[str]:
        """The user's current top-k, none of them in `exclude`."""
        ...

    def learn(self, event: Event, seen: set[str]) -> None:
        """Apply the event; `seen` is the user's interacted items including this one."""
        ...


@dataclass
class Outcome:
    """Per-event results, kept so windows and slices can be computed after the run."""

    ranks: list[int] = field(default_factory=list)  # 0 = miss, else 1-based rank; warm events only
    new_item: list[bool] = field(default_factory=list)  # per warm event
    tied: list[bool] = field(default_factory=list)  # per warm event: the user has another event in that second
    users: list[str] = field(default_factory=list)  # per warm event: whose it was (for paired comparisons)
    cold_hits: int = 0
    cold_events: int = 0
    recommended: set[str] = field(default_factory=set)
    diversity: list[float] = field(default_factory=list)
    seconds: float = 0.0
    events: int = 0


@dataclass(frozen=True)
class Report:
    name: str
    k: int
    metrics: dict[str, float]
    ranks: np.ndarray
    key: str = ""  # the model's key in the JSON (a short identifier); the name when empty
    # Per warm event, like `ranks`: the user, and whether the item was new (no one had touched it yet).
    users: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))
    new_item: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    @property
    def ident(self) -> str:
        return self.key or self.name

    def window_hit_rate(self, window: int) -> np.ndarray:
        """hit@k over a sliding window of warm events (for plots)."""
        hits = (self.ranks > 0).astype(np.float64)
        if len(hits) < window:
            return np.array([hits.mean()]) if len(hits) else np.array([])
        c = np.cumsum(np.concatenate([[0.0], hits]))
        return (c[window:] - c[:-window]) / window


def evaluate(
    model: Model,
    events: Sequence[Event],
    k: int = 10,
    catalog_size: int | None = None,
    similarity: Callable[[list[str]], float | None] | None = None,
    diversity_every: int = 10,
    progress: Callable[[Iterable[Event]], Iterable[Event]] = lambda it: it,
    score_from: int = 0,
) -> Report:
    """Replay `events` through `model` test-then-learn and score every list it would have shown from
    event `score_from` on (the events before it are only learnt: a model fitted on them is judged after)."""
    seen: dict[str, set[str]] = {}
    interacted: set[str] = set()
    tied = tied_seconds(events)
    out = Outcome()
    for n, event in enumerate(progress(events)):
        item, user = event.item_id, event.user_id
        history = seen.setdefault(user, set())
        start = time.perf_counter()
        if item is not None and n < score_from:
            history.add(item)
            interacted.add(item)
        elif item is not None:
            top = model.recommend(user, k, history)[:k]  # a model may return more; k are judged
            warm = bool(history)
            _score(out, top, item, warm=warm, new=item not in interacted, similarity=similarity,
                   diversity_every=diversity_every)
            if warm:
                out.tied.append((user, event.ts) in tied)
                out.users.append(user)
            history.add(item)
            interacted.add(item)
        model.learn(event, history)
        out.seconds += time.perf_counter() - start
        out.events += 1
    metrics = _metrics(out, k, catalog_size)
    extra = getattr(model, "extra_metrics", None)  # what a model measures of itself (recstream: online hits)
    if extra is not None:
        metrics.update(extra())
    return Report(model.name, k, metrics, np.array(out.ranks, dtype=np.int32), key=getattr(model, "key", ""),
                  users=np.array(out.users, dtype=object), new_item=np.array(out.new_item, dtype=bool))


def tied_seconds(events: Iterable[Event]) -> set[tuple[str, int]]:
    """(user, timestamp) pairs shared by two or more events: their order within the pair is arbitrary.

    Events outside these pairs have an order the data itself fixes, so metrics over them alone say
    how much of a model's score depends on how ties were broken.
    """
    counts = Counter((e.user_id, e.ts) for e in events if e.item_id is not None)
    return {key for key, n in counts.items() if n > 1}


def _score(out: Outcome, top: list[str], item: str, warm: bool, new: bool,
           similarity: Callable[[list[str]], float | None] | None, diversity_every: int) -> None:
    rank = top.index(item) + 1 if item in top else 0
    if not warm:
        out.cold_events += 1
        out.cold_hits += rank > 0
        return
    out.ranks.append(rank)
    out.new_item.append(new)
    out.recommended.update(top)
    if similarity is not None and len(out.ranks) % diversity_every == 0 and len(top) > 1:
        sim = similarity(top)
        if sim is not None:
            out.diversity.append(1.0 - sim)


def _metrics(out: Outcome, k: int, catalog_size: int | None) -> dict[str, float]:
    ranks = np.array(out.ranks, dtype=np.float64)
    hit = ranks > 0
    new = np.array(out.new_item, dtype=bool)
    tied = np.array(out.tied, dtype=bool)
    n = max(len(ranks), 1)
    ndcg = float((1.0 / np.log2(ranks[hit] + 1.0)).sum()) / n
    mrr = float((1.0 / ranks[hit]).sum()) / n
    return {
        f"hit@{k}": float(hit.sum()) / n,
        f"ndcg@{k}": ndcg,
        "mrr": mrr,
        f"new_item_hit@{k}": float(hit[new].mean()) if new.any() else 0.0,
        f"cold_user_hit@{k}": out.cold_hits / out.cold_events if out.cold_events else 0.0,
        f"untied_hit@{k}": float(hit[~tied].mean()) if (~tied).any() else 0.0,
        "coverage": len(out.recommended) / catalog_size if catalog_size else math.nan,
        "intra_list_diversity": float(np.mean(out.diversity)) if out.diversity else math.nan,
        "ms_per_event": 1000.0 * out.seconds / max(out.events, 1),
        "warm_events": float(len(ranks)),
        "new_item_events": float(new.sum()),
        "tied_events": float(tied.sum()),
        "cold_events": float(out.cold_events),
    }


def summary(report: Report) -> dict[str, Any]:
    """JSON-safe metrics: rounded, and None where a metric could not be computed."""
    return {key: (round(v, 6) if math.isfinite(v) else None) for key, v in report.metrics.items()}
