"""Candidate generation, ranking and reasons: from a user's state to a top-k list.

Batched on purpose: the agent recomputes every user touched by a batch with one index query.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from models.filters import allowed, is_allowed
from models.index import ItemIndex
from models.interest import UserState, query_vector
from models.params import CoreParams
from models.popularity import RecentPopularity

_VERBS = {"purchase": "purchased", "click": "clicked", "browse": "viewed"}
# How many of the newest history items may explain a recommendation.
_ANCHORS = 10
POPULAR_REASON = "popular right now"


@dataclass(frozen=True)
class Scored:
    item_id: str
    score: float
    reason: str


def recommend_many(
    states: Sequence[UserState],
    index: ItemIndex,
    params: CoreParams,
    popularity: RecentPopularity | None = None,
) -> list[list[Scored]]:
    """Top-k for each state: nearest items to the user's query vector, filtered, explained."""
    k = params.top_k
    queries = [query_vector(s, params) for s in states]
    rows = [i for i, q in enumerate(queries) if q is not None]
    results: list[list[Scored]] = [[] for _ in states]
    if rows and len(index):
        # Over-fetch by what the filters may remove, so a heavy buyer still gets k items.
        fetch = k + max(len(states[i].excluded) for i in rows)
        matrix = np.stack([queries[i] for i in rows]).astype(np.float32)
        for i, candidates in zip(rows, index.query(matrix, fetch)):
            kept = list(allowed(candidates, states[i], index))[:k]
            results[i] = _explain(states[i], kept, index)
    if popularity is not None:
        for i, state in enumerate(states):
            if len(results[i]) < k:
                results[i] = results[i] + _popular_fill(state, results[i], k, index, popularity)
    return results


def _popular_fill(
    state: UserState, have: list[Scored], k: int, index: ItemIndex, popularity: RecentPopularity
) -> list[Scored]:
    taken = {s.item_id for s in have}
    out: list[Scored] = []
    for item_id, _count in popularity.top(k + len(taken) + len(state.excluded), exclude=taken):
        if is_allowed(item_id, state, index):
            out.append(Scored(item_id, 0.0, POPULAR_REASON))
            if len(have) + len(out) == k:
                break
    return out


def _anchors(state: UserState, index: ItemIndex) -> list[tuple[str, str]]:
    """Newest distinct positive history items still in the catalog, newest first."""
    seen: set[str] = set()
    out: list[tuple[str, str]] = []
    for item_id, kind in reversed(state.recent):
        if kind in _VERBS and item_id not in seen and item_id in index:
            seen.add(item_id)
            out.append((item_id, kind))
            if len(out) == _ANCHORS:
                break
    return out


def _explain(state: UserState, kept: list[tuple[str, float]], index: ItemIndex) -> list[Scored]:
    """Each item is explained by the history item (or search) it is most similar to."""
    if not kept:
        return []
    anchors = _anchors(state, index)
    anchor_vecs = [index.vectors([a for a, _ in anchors])] if anchors else []
    labels = [f"because you {_VERBS[kind]} {index.title(item_id)}" for item_id, kind in anchors]
    if state.query_vec is not None and state.last_query:
        anchor_vecs.append(state.query_vec.reshape(1, -1))
        labels.append(f"matches your search '{_shorten(state.last_query)}'")
    if not labels:
        # Nothing positive to explain by (only dislikes, or deleted items): the popularity fill answers.
        return []
    cand = index.vectors([item_id for item_id, _ in kept])
    sims = cand @ np.concatenate(anchor_vecs).T
    best = sims.argmax(axis=1)
    return [Scored(item_id, round(score, 4), labels[int(b)]) for (item_id, score), b in zip(kept, best)]


def _shorten(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
