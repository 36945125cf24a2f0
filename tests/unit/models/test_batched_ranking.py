"""The batched ranking (models.ranking.recommend_many) against the ranking rule written out one user
at a time in plain Python: same items, same scores, same reasons, whichever path a batch takes
(several chunks or one; exact content neighbours or the HNSW index)."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.covisitation import CoVisitation, anchors_of, visit_for
from models.index import ItemIndex
from models.interest import UserState, apply_event, query_vector
from models.params import CoreParams
from models.ranking import POPULAR_REASON, recommend_many
from schemas.records import Event, EventType

DIM = 8
_VERBS = {"purchase": "purchased", "click": "clicked", "browse": "viewed"}


def reference_list(state: UserState, index: ItemIndex, params: CoreParams, covis: CoVisitation,
                   extra: set[str]) -> list[tuple[str, float, str]]:
    """The rule of models/ranking.py's module docstring, for one user, with dicts and loops."""
    co: dict[str, float] = {}
    anchors = anchors_of(state, params)
    for anchor, weight in anchors:
        count = covis.count(anchor)
        if count > 0:
            for item, pair in covis.neighbours(anchor).items():
                co[item] = co.get(item, 0.0) + weight / count**params.anchor_norm * pair
    co = {c: v / covis.count(c) ** params.candidate_norm for c, v in co.items() if v > 0 and covis.count(c) > 0}
    top_co = max(co.values(), default=0.0)
    content: dict[str, float] = {}
    q = query_vector(state, params)
    live = list(index.item_ids())
    if q is not None and live:
        sims = index.vectors(live) @ q
        for j in np.argsort(-sims, kind="stable")[: params.content_candidates]:
            content[live[j]] = max(float(sims[j]), 0.0)
    in_catalog = np.array([covis.name(i) in index for i in range(len(covis))], dtype=bool)
    popular = [] if state.searching else [covis.name(int(i)) for i in covis.popular_ids(in_catalog)]
    pop_max = covis.popularity(popular[0]) if popular else 0.0
    w_content = 1.0 if state.searching or top_co <= 0 else params.w_content
    scored = []
    for c in set(co) | set(popular) | set(content):
        if c not in index or c in state.excluded or c in extra:
            continue
        co_n = co.get(c, 0.0) / top_co if top_co > 0 else 0.0
        pop_n = covis.popularity(c) / pop_max if pop_max > 0 else 0.0
        sim = content.get(c, 0.0)
        total = co_n + params.w_popularity * pop_n + (w_content + params.w_fresh * (covis.count(c) <= 0)) * sim
        scored.append((total, c, co_n, sim))
    scored.sort(key=lambda t: -t[0])
    return [(c, total, _reason(state, c, co_n, sim, w_content, anchors, index, covis))
            for total, c, co_n, sim in scored[: params.top_k]]


def _reason(state: UserState, item: str, co_n: float, sim: float, w_content: float,
            anchors: list[tuple[str, float]], index: ItemIndex, covis: CoVisitation) -> str:
    if co_n > 0 and co_n >= w_content * sim:
        best, best_value = None, 0.0
        for anchor, weight in anchors:
            value = weight * covis.pair(anchor, item)
            if value > best_value and anchor in index:
                best, best_value = anchor, value
        if best is None:
            return POPULAR_REASON
        verb = {i: k for i, k in state.recent if k in _VERBS}.get(best, "")
        return f"because you {_VERBS.get(verb, 'viewed')} {index.title(best)}"
    if sim > 0:
        seen: list[tuple[str, str]] = []
        for i, k in reversed(state.recent):
            if k in _VERBS and i in index and i not in {s for s, _ in seen} and len(seen) < 10:
                seen.append((i, k))
        labels = [f"because you {_VERBS[k]} {index.title(i)}" for i, k in seen]
        vecs = [index.vectors([i])[0] for i, _ in seen]
        if state.query_vec is not None and state.last_query:
            labels.append(f"matches your search '{' '.join(state.last_query.split())}'")
            vecs.append(state.query_vec)
        if not labels:
            return POPULAR_REASON
        return labels[int(np.argmax(np.stack(vecs) @ index.vectors([item])[0]))]
    return POPULAR_REASON


_event = st.tuples(
    st.integers(0, 7),  # user
    st.sampled_from([EventType.CLICK, EventType.BROWSE, EventType.PURCHASE, EventType.DISLIKE, EventType.SEARCH]),
    st.integers(0, 10**6),  # item or query seed
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_items=st.integers(5, 70),
    seed=st.integers(0, 2**16),
    top_k=st.integers(1, 12),
    events=st.lists(_event, min_size=1, max_size=120),
    deleted=st.lists(st.integers(0, 69), max_size=5),
    chunk_cells=st.sampled_from([1, 40, 200, 1 << 20]),
    exact_max=st.sampled_from([0, 10**6]),
)
def test_the_batch_ranks_every_user_as_the_one_user_rule_does(
    n_items: int, seed: int, top_k: int, events: list[tuple[int, EventType, int]], deleted: list[int],
    chunk_cells: int, exact_max: int,
) -> None:
    params = CoreParams(top_k=top_k, content_candidates=min(12, n_items), popular_candidates=6)
    rng = np.random.default_rng(seed)
    vecs = rng.normal(size=(n_items, DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    index = ItemIndex(DIM, capacity=8)
    for n, v in enumerate(vecs):
        index.upsert(f"i{n}", f"Title {n}", [], f"h{n}", v)
    covis = CoVisitation(params)
    states: dict[str, UserState] = {}
    for n, (user, kind, pick) in enumerate(events):
        u = f"u{user}"
        state = states.get(u) or UserState.empty(DIM)
        if kind is EventType.SEARCH:
            ev = Event(event_id=f"e{n}", user_id=u, type=kind, query=f"q {pick % 5}", ts=n * 1000)
            states[u] = apply_event(state, ev, params, query_vec=vecs[pick % n_items], offset=n)
            continue
        # Now and then an item the catalog does not hold: co-visited, never recommendable.
        item = f"i{pick % n_items}" if pick % 11 else f"ghost{pick % 3}"
        ev = Event(event_id=f"e{n}", user_id=u, type=kind, item_id=item, ts=n * 1000)
        visit = visit_for(state, ev, params)
        if visit is not None:
            covis.apply(visit)
        item_vec = index.vectors([item])[0] if item in index else None
        states[u] = apply_event(state, ev, params, item_vec=item_vec, offset=n)
    for d in deleted:
        index.delete(f"i{d % n_items}")
    users = sorted(states) + ["cold"]
    batch = [states.get(u) or UserState.empty(DIM) for u in users]
    extra = [{f"i{(seed + k) % n_items}"} if k % 3 == 0 else set() for k in range(len(users))]

    got = recommend_many(batch, index, params, covis, extra, chunk_cells=chunk_cells, exact_content_max_items=exact_max,
                         exact_content_min_users=1)

    for u, state, ex, recs in zip(users, batch, extra, got):
        want = reference_list(state, index, params, covis, ex)
        assert len(recs) == len(want), u
        # Best first, with the reference's scores position by position.
        for r, (_, total, _) in zip(recs, want):
            assert abs(r.score - total) < 2e-4, (u, recs, want)
        # Items may differ only among equal scores; where the item agrees, so does its reason.
        reference = {item: (total, reason) for item, total, reason in want}
        bar = want[-1][1] if want else 0.0
        for r in recs:
            if r.item_id in reference:
                assert r.reason == reference[r.item_id][1], (u, r, reference[r.item_id])
            else:
                assert abs(r.score - bar) < 2e-4, (u, r, want)
