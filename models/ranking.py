"""Candidate generation, ranking and reasons: from users' states to top-k lists, a batch at a time.

Three candidate sources, one blended score:
- co-visitation from the user's newest items (what people went on to after those items),
- popularity now (decayed), which also carries cold users,
- content neighbours of the user's interest vector, the only way to reach items nobody has
  interacted with yet, which get an extra `w_fresh` so new items are not starved.
A user with no co-visitation evidence, or whose newest event is a search, gets a content-led list.

Every user of a batch is ranked at once, on whole arrays (`recommend_many`):
- co-visitation is one sparse product of the batch's anchor weights with the anchors' pair rows
  (`CoVisitation.anchor_scores`);
- content neighbours come from the HNSW index for content-led users; for users with co-visitation
  evidence (most of them) they are the exact nearest items by one matrix product, while the
  catalog is small enough for that to be cheaper than the graph search (`EXACT_CONTENT_MAX_ITEMS`);
- the three signals are blended in a dense (users x candidate items) matrix, chunked to bound
  memory; exclusions and deleted items are masks; the top k per user is a partition, not a sort;
- reasons are worked out for the k chosen items only.
"""

from __future__ import annotations

import weakref
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

from models.covisitation import AnchorScores, CoVisitation, anchors_of
from models.index import ItemIndex
from models.interest import UserState, query_vectors
from models.params import CoreParams

_VERBS = {"purchase": "purchased", "click": "clicked", "browse": "viewed"}
# How many of the newest history items may explain a content recommendation.
_ANCHORS = 10
POPULAR_REASON = "popular right now"
# Exact content neighbours (one matrix product over the whole catalog) while the catalog has at
# most this many items; beyond it, per-list cost would grow with the catalog: HNSW for everyone.
EXACT_CONTENT_MAX_ITEMS = 50_000
# ... and only for batches of at least this many such users: the product reads every item vector
# once per batch (~15 MB for 10,000 items), which one or two graph searches undercut.
EXACT_CONTENT_MIN_USERS = 8
# ... computed this many users at a time (the results do not depend on it).
EXACT_CONTENT_USERS_PER_CALL = 32
# Cells of one chunk's dense (users x candidates) matrices: at most ~8 MB each in float64.
CHUNK_CELLS = 1 << 20
# With diversity on, the re-rank chooses top_k from this many times top_k best-scored candidates.
DIVERSITY_POOL = 3


@dataclass(frozen=True)
class Scored:
    item_id: str
    score: float
    reason: str


@dataclass(frozen=True)
class _Content:
    """Each user's content neighbours: labels and (clipped) similarities, parallel arrays."""

    labels: list[np.ndarray]
    sims: list[np.ndarray]


@dataclass(frozen=True)
class _Batch:
    """What every chunk of one batch shares."""

    states: Sequence[UserState]
    exclude: Sequence[Collection[str]] | None
    anchors: list[list[tuple[str, float]]]
    co: AnchorScores
    # Per user: the largest co-visitation score (0: no evidence); content-led; searching.
    top_co: np.ndarray
    content_led: np.ndarray
    searching: np.ndarray
    content: _Content
    # Dense co-visitation id -> index label (-1: not in the index), and back (-1: no co-visitation id).
    label_of: np.ndarray
    covis_of: np.ndarray
    counts: np.ndarray  # by label
    pops: np.ndarray  # by label
    pop_labels: np.ndarray  # the popular candidates, by label
    pop_max: float
    # Anchor slots (users x slots) that may explain an item: evidence, and still in the catalog.
    slot_live: np.ndarray
    pair_keys: np.ndarray  # AnchorScores.pair_keys


def recommend_many(
    states: Sequence[UserState],
    index: ItemIndex,
    params: CoreParams,
    covis: CoVisitation,
    exclude: Sequence[Collection[str]] | None = None,
    *,
    chunk_cells: int = CHUNK_CELLS,
    exact_content_max_items: int = EXACT_CONTENT_MAX_ITEMS,
    exact_content_min_users: int = EXACT_CONTENT_MIN_USERS,
) -> list[list[Scored]]:
    """Top-k for each state; `exclude[i]` removes more items for state i (evaluation protocols).
    The keywords exist for tests, which need small thresholds to reach every path."""
    if not states:
        return []
    batch = _prepare(states, index, params, covis, exclude, (exact_content_max_items, exact_content_min_users))
    out: list[list[Scored]] = []
    step = max(1, chunk_cells // max(1, index.n_labels))
    for start in range(0, len(states), step):
        out.extend(_rank_chunk(batch, range(start, min(len(states), start + step)), index, params, covis))
    return out


def _prepare(
    states: Sequence[UserState], index: ItemIndex, params: CoreParams, covis: CoVisitation,
    exclude: Sequence[Collection[str]] | None, exact_when: tuple[int, int],
) -> _Batch:
    anchors = [anchors_of(s, params) for s in states]
    co = covis.anchor_scores(anchors, params)
    top_co = _row_max(co.scores.indptr, co.scores.data)
    searching = np.array([s.searching for s in states], dtype=bool)
    content_led = searching | (top_co <= 0)
    content = _content_neighbours(states, index, params, content_led, exact_when)
    label_of = _labels_of_covis(covis, index)
    known = label_of >= 0
    covis_of = np.full(index.n_labels, -1, dtype=np.int64)
    covis_of[label_of[known]] = np.flatnonzero(known)
    counts = np.zeros(index.n_labels)
    counts[label_of[known]] = covis.counts[known]
    pops = np.zeros(index.n_labels)
    pops[label_of[known]] = covis.popularities[known]
    in_catalog = known.copy()
    in_catalog[known] = index.live_mask[label_of[known]]
    pop_ids = covis.popular_ids(allowed=in_catalog, params=params)
    pop_labels = label_of[pop_ids]
    # A search is an explicit request: popularity must not drown it (applied per user, in the chunk).
    pop_max = float(covis.popularities[pop_ids[0]]) if len(pop_ids) else 0.0
    evidence = co.slot_id >= 0
    slot_live = np.zeros(co.slot_id.shape, dtype=bool)
    slot_live[evidence] = in_catalog[co.slot_id[evidence]]
    return _Batch(states, exclude, anchors, co, top_co, content_led, searching, content, label_of, covis_of,
                  counts, pops, pop_labels, pop_max, slot_live, co.pair_keys())


def _row_max(indptr: np.ndarray, data: np.ndarray) -> np.ndarray:
    """Largest value of each row of a CSR matrix with non-negative data (0 for an empty row)."""
    out = np.zeros(len(indptr) - 1)
    filled = np.flatnonzero(np.diff(indptr) > 0)
    if len(filled):
        out[filled] = np.maximum.reduceat(data, indptr[filled])
    return out


@dataclass(frozen=True)
class _Blend:
    """One chunk's scores on (users x candidate items) arrays; `columns` are the items' labels."""

    columns: np.ndarray
    total: np.ndarray  # -inf where an item may not be recommended to the user
    co_n: np.ndarray  # weighted co-visitation
    content: np.ndarray  # weighted content similarity


def _rank_chunk(b: _Batch, users: range, index: ItemIndex, params: CoreParams, covis: CoVisitation) -> list[list[Scored]]:
    """The top k of users `users` of the batch, each with its reason."""
    blend = _blend(b, users, index, params)
    # Ties go to the item co-visitation met first, then to the older catalog item: deterministic.
    known = b.covis_of[blend.columns]
    tie = np.where(known >= 0, known, len(covis) + blend.columns)
    if params.diversity_lambda > 0:
        pool = _top_k(blend.total, tie, params.list_length * DIVERSITY_POOL)
        picked = [_most_marginal(blend.total[r], blend.columns, cols, index, params.diversity_lambda, params.list_length)
                  for r, cols in enumerate(pool)]
    else:
        picked = _top_k(blend.total, tie, params.list_length)
    return _lists(b, users, blend, picked, index)


def _most_marginal(
    scores: np.ndarray, labels: np.ndarray, pool: np.ndarray, index: ItemIndex, lam: float, k: int
) -> np.ndarray:
    """Maximal marginal relevance: from `pool` (columns, best score first) pick k, each time the one
    with the best (1 - lam) x score (scaled to [0, 1] over the pool) - lam x its highest cosine
    similarity to the items picked so far. The best-scored item always leads."""
    if len(pool) <= 1:
        return pool[:k]
    rel = scores[pool]
    span = rel[0] - rel[-1]
    rel = (rel - rel[-1]) / span if span > 0 else np.ones(len(pool))
    vecs = index.unit_vectors[labels[pool]]
    sims = vecs @ vecs.T
    chosen = [0]
    closest = sims[0].copy()
    free = np.ones(len(pool), dtype=bool)
    free[0] = False
    for _ in range(1, min(k, len(pool))):
        gain = np.where(free, (1.0 - lam) * rel - lam * closest, -np.inf)
        j = int(np.argmax(gain))
        chosen.append(j)
        free[j] = False
        np.maximum(closest, sims[j], out=closest)
    return pool[np.array(chosen)]


def _blend(b: _Batch, users: range, index: ItemIndex, params: CoreParams) -> _Blend:
    """w_covis x co-visitation + w_popularity x popularity + w_sim x content for every candidate of every user of
    the chunk; the columns are the union of their co-visited, popular and content items."""
    n = len(users)
    rows = np.arange(n)
    indptr = b.co.scores.indptr
    first, last = indptr[users.start], indptr[users.stop]
    co_user = np.repeat(rows, np.diff(indptr[users.start : users.stop + 1]))
    co_label = b.label_of[b.co.scores.indices[first:last]]
    in_index = co_label >= 0
    co_user, co_label, co_value = co_user[in_index], co_label[in_index], b.co.scores.data[first:last][in_index]
    content_user = np.repeat(rows, [len(b.content.labels[u]) for u in users])
    content_label = np.concatenate([b.content.labels[u] for u in users])
    content_sim = np.concatenate([b.content.sims[u] for u in users])
    used = np.zeros(index.n_labels, dtype=bool)
    for labels in (co_label, b.pop_labels, content_label):
        used[labels] = True
    columns = np.flatnonzero(used)
    column_of = np.full(index.n_labels, -1, dtype=np.int64)
    column_of[columns] = np.arange(len(columns))
    shape = (n, len(columns))

    top_co = b.top_co[users.start : users.stop]
    co_n = np.zeros(shape)
    co_n[co_user, column_of[co_label]] = co_value / top_co[co_user]
    sims = np.zeros(shape)
    sims[content_user, column_of[content_label]] = content_sim
    candidate = co_n > 0
    candidate[content_user, column_of[content_label]] = True
    searching = b.searching[users.start : users.stop]
    candidate[np.ix_(~searching, column_of[b.pop_labels])] = True
    pop_n = (b.pops[columns] / b.pop_max)[None, :] * (~searching)[:, None] if b.pop_max > 0 else 0.0
    w_content = np.where(b.content_led[users.start : users.stop], params.w_content_led, params.w_content)
    w_sim = w_content[:, None] + params.w_fresh * (b.counts[columns] <= 0)[None, :]
    if params.w_covis != 1.0:
        co_n *= params.w_covis
    content = w_sim * sims
    total = co_n + params.w_popularity * pop_n + content
    allowed = candidate & index.live_mask[columns][None, :]
    _ban_excluded(allowed, b, users, column_of, index, params.exclude_recent)
    total[~allowed] = -np.inf
    return _Blend(columns, total, co_n, content)


def _ban_excluded(allowed: np.ndarray, b: _Batch, users: range, column_of: np.ndarray, index: ItemIndex,
                  exclude_recent: bool) -> None:
    """Clear each user's purchased, disliked, (if so set) recent and (evaluation) excluded items in `allowed`."""
    for row, u in enumerate(users):
        banned = set(b.states[u].excluded)
        if exclude_recent:
            banned.update(item for item, _kind in b.states[u].recent)
        if b.exclude is not None:
            banned.update(b.exclude[u])
        if banned:
            labels = index.labels_of(banned)
            cols = column_of[labels[labels >= 0]]
            allowed[row, cols[cols >= 0]] = False


def _lists(b: _Batch, users: range, blend: _Blend, picked: list[np.ndarray], index: ItemIndex) -> list[list[Scored]]:
    """The picked items as Scored lists. Which signal explains each is decided on the chunk's flat
    arrays at once; only the reason's wording is per item."""
    row = np.repeat(np.arange(len(users)), [len(p) for p in picked])
    col = np.concatenate(picked) if picked else np.zeros(0, dtype=np.int64)
    labels, co_p, content_p = blend.columns[col], blend.co_n[row, col], blend.content[row, col]
    by_covis = (co_p > 0) & (co_p >= content_p)
    by_content = ~by_covis & (content_p > 0)
    items = index.ids_of_labels(labels)
    values = np.round(blend.total[row, col], 4).tolist()
    slot = np.full(len(col), -1, dtype=np.int64)
    slot[by_covis] = _covis_anchor_slots(b, users.start + row[by_covis], b.covis_of[labels[by_covis]])
    out: list[list[Scored]] = []
    end = 0
    for r, u in enumerate(users):
        at = slice(end, end + len(picked[r]))
        end = at.stop
        reasons = _reasons(b, u, items[at], slot[at], by_content[at], index)
        out.append([Scored(i, v, why) for i, v, why in zip(items[at], values[at], reasons)])
    return out


def _top_k(total: np.ndarray, tie: np.ndarray, k: int) -> list[np.ndarray]:
    """Per row, the columns of the k largest finite values, best first, ties by `tie` ascending."""
    if total.shape[1] > k:
        kth = -np.partition(-total, k - 1, axis=1)[:, k - 1]
    else:
        kth = np.full(total.shape[0], -np.inf)
    out = []
    for row, bound in zip(total, kth):
        cols = np.flatnonzero((row >= bound) & np.isfinite(row))
        order = np.lexsort((tie[cols], -row[cols]))[:k]
        out.append(cols[order])
    return out


def _content_neighbours(states: Sequence[UserState], index: ItemIndex, params: CoreParams,
                        content_led: np.ndarray, exact_when: tuple[int, int]) -> _Content:
    """Nearest live items to each user's interest direction: exact for users with co-visitation
    evidence while the catalog is small, the HNSW index otherwise."""
    labels = [np.zeros(0, dtype=np.int64)] * len(states)
    sims = [np.zeros(0)] * len(states)
    queries, has_query = query_vectors(states, params, index.dim)
    k = min(params.content_candidates, len(index))
    if k <= 0:
        return _Content(labels, sims)
    max_items, min_users = exact_when
    exact = has_query & ~content_led & (index.n_labels <= max_items)
    if exact.sum() < min_users:
        exact[:] = False
    exact_rows = np.flatnonzero(exact)
    dead = ~index.live_mask
    # A few users per product: one call on a whole batch (500 users x 10,000 items) held the GIL for
    # ~50 ms in argpartition, and the worker's event loop with it (streams/worker/model_access.py).
    for start in range(0, len(exact_rows), EXACT_CONTENT_USERS_PER_CALL):
        rows = exact_rows[start : start + EXACT_CONTENT_USERS_PER_CALL]
        scores = queries[rows] @ index.unit_vectors.T
        scores[:, dead] = -np.inf
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k] if scores.shape[1] > k else np.argsort(-scores, axis=1)
        for at, (r, cols) in enumerate(zip(rows, top)):
            labels[r] = cols
            sims[r] = np.maximum(scores[at, cols].astype(np.float64), 0.0)
    graph = np.flatnonzero(has_query & ~exact)
    if len(graph):
        for r, found in zip(graph, index.query(queries[graph], k)):
            labels[r] = index.labels_of(item for item, _ in found)
            sims[r] = np.maximum(np.fromiter((s for _, s in found), dtype=np.float64, count=len(found)), 0.0)
    return _Content(labels, sims)


# A co-visitation id's index label, kept per CoVisitation and extended as either side learns items.
_LABELS: weakref.WeakKeyDictionary[CoVisitation, tuple[weakref.ref[ItemIndex], int, np.ndarray]] = (
    weakref.WeakKeyDictionary()
)


def _labels_of_covis(covis: CoVisitation, index: ItemIndex) -> np.ndarray:
    """Index label of every co-visitation id (-1: not in the index). Labels never change once given,
    so only new co-visitation ids, and ids the index lacked while it has since grown, are looked up."""
    cached = _LABELS.get(covis)
    n = len(covis)
    if cached is None or cached[0]() is not index:
        known, labels = 0, np.zeros(0, dtype=np.int64)
    else:
        _, known, labels = cached
    if len(labels) < n:
        labels = np.concatenate([labels, index.labels_of(covis.name(i) for i in range(len(labels), n))])
    if known != index.n_labels:
        missing = np.flatnonzero(labels < 0)
        if len(missing):
            labels[missing] = index.labels_of(covis.name(int(i)) for i in missing)
    _LABELS[covis] = (weakref.ref(index), index.n_labels, labels)
    return labels


def _reasons(
    b: _Batch, u: int, items: list[str], slots: np.ndarray, by_content: np.ndarray, index: ItemIndex
) -> list[str]:
    """Each chosen item is explained by the signal that contributed most to its score: the history
    item whose co-visitation gave most (`slots`: which anchor, -1 none), the history item (or
    search) it is most like, or popularity."""
    reasons = [POPULAR_REASON] * len(items)
    state = b.states[u]
    if (slots >= 0).any():
        verbs = {item: kind for item, kind in state.recent if kind in _VERBS}  # newest positive kind wins
        for j in np.flatnonzero(slots >= 0):
            anchor = b.anchors[u][slots[j]][0]
            reasons[j] = f"because you {_VERBS.get(verbs.get(anchor, ''), 'viewed')} {index.title(anchor)}"
    if by_content.any():
        rows = np.flatnonzero(by_content)
        found = dict(_content_reasons(state, [items[j] for j in rows], index))
        for j in rows:
            reasons[j] = found.get(items[j], POPULAR_REASON)
    return reasons


def _covis_anchor_slots(b: _Batch, users: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
    """For each (user, item co-visitation id), the slot of the user's anchor (still in the catalog)
    that contributed most to the item's co-visitation score (recency weight x pair weight); -1 when
    none did. All pairs of a chunk are looked up at once in the batch's sorted pair keys."""
    rows = b.co.slot_row[users]  # (picks x slots)
    if not rows.size or not len(b.pair_keys):
        return np.full(len(users), -1, dtype=np.int64)
    wanted = rows * b.co.rows.shape[1] + item_ids[:, None]
    at = np.minimum(np.searchsorted(b.pair_keys, wanted), len(b.pair_keys) - 1)
    hit = (b.pair_keys[at] == wanted) & (rows >= 0) & b.slot_live[users]
    contribution = np.where(hit, b.co.slot_weight[users] * b.co.rows.data[at], 0.0)
    return np.where(contribution.max(axis=1) > 0, contribution.argmax(axis=1), -1)


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
