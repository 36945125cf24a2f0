"""Candidate generation, ranking and reasons: from a user's state to a top-k list.

Three candidate sources, one blended score:
- co-visitation from the user's newest items (what people went on to after those items),
- popularity now (decayed), which also carries cold users,
- HNSW content neighbours of the user's interest vector, the only way to reach items nobody has
  interacted with yet, which get an extra `w_fresh` so new items are not starved.
A user with no co-visitation evidence, or whose newest event is a search, gets a content-led list.
Batched on purpose: the agent recomputes every user touched by a batch with one index query.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from dataclasses import dataclass

import numpy as np

from models.covisitation import CoVisitation, anchors_of
from models.index import ItemIndex
from models.interest import UserState, query_vector
from models.params import CoreParams

_VERBS = {"purchase": "purchased", "click": "clicked", "browse": "viewed"}
# How many of the newest history items may explain a content recommendation.
_ANCHORS = 10
POPULAR_REASON = "popular right now"
_NOTHING: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Scored:
    item_id: str
    score: float
    reason: str


@dataclass
class _Terms:
    """The normalised signals of one candidate; the score is their weighted sum."""

    covis: float = 0.0
    popularity: float = 0.0
    content: float = 0.0


def recommend_many(
    states: Sequence[UserState],
    index: ItemIndex,
    params: CoreParams,
    covis: CoVisitation,
    exclude: Sequence[Container[str]] | None = None,
) -> list[list[Scored]]:
    """Top-k for each state; `exclude[i]` removes more items for state i (evaluation protocols)."""
    queries = [query_vector(s, params) for s in states]
    rows = [i for i, q in enumerate(queries) if q is not None]
    content: list[list[tuple[str, float]]] = [[] for _ in states]
    if rows and len(index):
        matrix = np.stack([queries[i] for i in rows]).astype(np.float32)
        for i, found in zip(rows, index.query(matrix, params.content_candidates)):
            content[i] = found
    return [
        _rank(state, content[i], covis, index, params, exclude[i] if exclude else _NOTHING)
        for i, state in enumerate(states)
    ]


def _rank(
    state: UserState,
    content: list[tuple[str, float]],
    covis: CoVisitation,
    index: ItemIndex,
    params: CoreParams,
    exclude: Container[str],
) -> list[Scored]:
    anchors = anchors_of(state, params)
    content_ids = covis.ids_of(item for item, _ in content)  # interns new items: ids are stable
    co_ids, co_values = covis.sparse_scores(anchors) if anchors else (np.zeros(0, np.int64), np.zeros(0))
    top_co = float(co_values.max()) if len(co_values) else 0.0
    # A search is an explicit request: popularity must not drown it.
    pop_ids = np.zeros(0, dtype=np.int64) if state.searching else covis.popular_ids()
    # Candidates: co-visited, popular now, or content neighbours; every score below is per candidate.
    cand = np.unique(np.concatenate([co_ids, pop_ids, content_ids]).astype(np.int64))
    co_n = np.zeros(len(cand))
    if top_co > 0:
        co_n[np.searchsorted(cand, co_ids)] = co_values / top_co
    sims = np.zeros(len(cand))
    if len(content_ids):
        sims[np.searchsorted(cand, content_ids)] = np.maximum([sim for _, sim in content], 0.0)
    pops = covis.popularities
    pop_max = float(pops[pop_ids[0]]) if len(pop_ids) else 0.0
    pop_n = pops[cand] / pop_max if pop_max > 0 else np.zeros(len(cand))
    content_led = state.searching or top_co <= 0
    w_content = 1.0 if content_led else params.w_content
    w_sim = w_content + params.w_fresh * (covis.counts[cand] <= 0)
    total = co_n + params.w_popularity * pop_n + w_sim * sims
    ranked = _top_allowed(total, cand, params.top_k, state, exclude, index, covis)
    terms = {covis.name(int(cand[j])): _Terms(float(co_n[j]), float(pop_n[j]), float(sims[j])) for _, j in ranked}
    best = [(v, covis.name(int(cand[j]))) for v, j in ranked]
    return _explain(state, best, terms, anchors, covis, index, w_content)


def _top_allowed(
    total: np.ndarray, cand: np.ndarray, k: int, state: UserState, exclude: Container[str], index: ItemIndex,
    covis: CoVisitation,
) -> list[tuple[float, int]]:
    """The k best candidates (positions in `cand`) that pass the filters, best first."""
    order = np.argsort(-total, kind="stable")
    out: list[tuple[float, int]] = []
    for j in order:
        item = covis.name(int(cand[j]))
        if item in state.excluded or item in exclude or item not in index:
            continue
        out.append((float(total[j]), int(j)))
        if len(out) == k:
            break
    return out


def _explain(
    state: UserState,
    best: list[tuple[float, str]],
    terms: dict[str, _Terms],
    anchors: list[tuple[str, float]],
    covis: CoVisitation,
    index: ItemIndex,
    w_content: float,
) -> list[Scored]:
    """Each item is explained by the signal that contributed most to its score."""
    kinds = {item: kind for item, kind in state.recent if kind in _VERBS}  # newest positive kind wins
    content_items = [item for _, item in best if _dominant(terms[item], w_content) == "content"]
    by_content = dict(_content_reasons(state, content_items, index))
    out: list[Scored] = []
    for value, item in best:
        kind = _dominant(terms[item], w_content)
        anchor = _covis_anchor(anchors, item, covis, index) if kind == "covis" else None
        if anchor is not None:
            reason = f"because you {_VERBS.get(kinds.get(anchor, ''), 'viewed')} {index.title(anchor)}"
        elif kind == "content" and item in by_content:
            reason = by_content[item]
        else:
            reason = POPULAR_REASON
        out.append(Scored(item, round(value, 4), reason))
    return out


def _covis_anchor(anchors: list[tuple[str, float]], item: str, covis: CoVisitation, index: ItemIndex) -> str | None:
    """The history item (still in the catalog) that contributed most to `item`'s co-visitation."""
    best, best_value = None, 0.0
    for anchor, weight in anchors:
        value = weight * covis.pair(anchor, item)
        if value > best_value and anchor in index:
            best, best_value = anchor, value
    return best


def _dominant(t: _Terms, w_content: float) -> str:
    if t.covis > 0 and t.covis >= w_content * t.content:
        return "covis"
    if t.content > 0:
        return "content"
    return "popular"


def _content_anchors(state: UserState, index: ItemIndex) -> list[tuple[str, str]]:
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


def _content_reasons(state: UserState, items: list[str], index: ItemIndex) -> list[tuple[str, str]]:
    """Content items are explained by the history item (or search) they are most similar to."""
    if not items:
        return []
    anchors = _content_anchors(state, index)
    anchor_vecs = [index.vectors([a for a, _ in anchors])] if anchors else []
    labels = [f"because you {_VERBS[kind]} {index.title(item_id)}" for item_id, kind in anchors]
    if state.query_vec is not None and state.last_query:
        anchor_vecs.append(state.query_vec.reshape(1, -1))
        labels.append(f"matches your search '{_shorten(state.last_query)}'")
    if not labels:
        return []
    sims = index.vectors(items) @ np.concatenate(anchor_vecs).T
    return [(item, labels[int(b)]) for item, b in zip(items, sims.argmax(axis=1))]


def _shorten(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
