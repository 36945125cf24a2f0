"""Ranking, filters and reasons (models.ranking, models.filters): what may and may not be recommended."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.filters import allowed, is_allowed
from models.index import ItemIndex
from models.interest import UserState, apply_event, query_vector
from models.params import CoreParams
from models.covisitation import CoVisitation, visit_for
from models.ranking import POPULAR_REASON, Scored, recommend_many
from schemas.records import Event, EventType

DIM = 8
_VERB = {"purchase": "purchased", "click": "clicked", "browse": "viewed"}
_POSITIVE = (EventType.PURCHASE, EventType.CLICK, EventType.BROWSE)


def _unit(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _catalog(vecs: np.ndarray) -> ItemIndex:
    idx = ItemIndex(vecs.shape[1], capacity=8)
    for n, v in enumerate(vecs):
        idx.upsert(f"i{n}", f"Title {n}", [], f"h{n}", v)
    return idx


class World:
    """A catalog, users' states and co-visitation, driven the way the pipeline drives them."""

    def __init__(self, vecs: np.ndarray, params: CoreParams) -> None:
        self.vecs = vecs
        self.index = _catalog(vecs)
        self.params = params
        self.covis = CoVisitation(params)
        self.states: dict[str, UserState] = {}
        self.n = 0

    def state(self, user: str) -> UserState:
        return self.states.get(user) or UserState.empty(self.index.dim)

    def event(self, user: str, kind: EventType, item: str | None = None, query: str | None = None,
              query_vec: np.ndarray | None = None) -> None:
        self.n += 1
        if kind is EventType.SEARCH:
            ev = Event(event_id=f"e{self.n}", user_id=user, type=kind, query=query, ts=self.n)
            self.states[user] = apply_event(self.state(user), ev, self.params, query_vec=query_vec, offset=self.n)
            return
        assert item is not None
        ev = Event(event_id=f"e{self.n}", user_id=user, type=kind, item_id=item, ts=self.n)
        vec = self.index.vectors([item])[0] if item in self.index else None
        visit = visit_for(self.state(user), ev, self.params)
        if visit is not None:
            self.covis.apply(visit)
        self.states[user] = apply_event(self.state(user), ev, self.params, item_vec=vec, offset=self.n)

    def delete(self, item: str) -> None:
        self.index.delete(item)

    def revive(self, item: str) -> None:
        """Re-delivered upsert with unchanged text: no new vector."""
        n = int(item[1:])
        self.index.upsert(item, f"Title {n}", [], f"h{n}", None)


def _allowed_reasons(state: UserState, index: ItemIndex) -> set[str]:
    """Reasons name a positive history item still in the catalog, or the user's search."""
    reasons = {f"because you {_VERB[k]} {index.title(i)}" for i, k in state.recent if k in _VERB and i in index}
    if state.last_query:
        reasons.add(f"matches your search '{state.last_query}'")
    return reasons


def _check_list(recs: list[Scored], state: UserState, index: ItemIndex, params: CoreParams) -> None:
    ids = [r.item_id for r in recs]
    assert len(ids) <= params.top_k
    assert len(ids) == len(set(ids)), "duplicate item"
    for r in recs:
        assert r.item_id not in state.excluded, f"purchased or disliked item {r.item_id} recommended"
        assert r.item_id in index, f"deleted or unknown item {r.item_id} recommended"
        assert isinstance(r.reason, str) and r.reason
    scores = [r.score for r in recs]
    assert scores == sorted(scores, reverse=True), "best first"
    allowed_reasons = _allowed_reasons(state, index)
    for r in recs:
        assert r.reason == POPULAR_REASON or r.reason in allowed_reasons, (r.reason, allowed_reasons)
        # co-visitation <= 1, popularity <= w_popularity, content <= 1 + w_fresh
        assert 0.0 <= r.score <= 1.0 + params.w_popularity + 1.0 + params.w_fresh + 1e-6


# -- the central invariant --------------------------------------------------------------------

_op = st.one_of(
    st.tuples(st.just("pos"), st.integers(0, 2), st.sampled_from(_POSITIVE), st.integers(0, 10**6)),
    st.tuples(st.just("pos"), st.integers(0, 2), st.just(EventType.PURCHASE), st.integers(0, 10**6)),
    st.tuples(st.just("dislike"), st.integers(0, 2), st.just(EventType.DISLIKE), st.integers(0, 10**6)),
    st.tuples(st.just("search"), st.integers(0, 2), st.just(EventType.SEARCH), st.integers(0, 10**6)),
    st.tuples(st.just("delete"), st.just(0), st.just(EventType.CLICK), st.integers(0, 10**6)),
    st.tuples(st.just("revive"), st.just(0), st.just(EventType.CLICK), st.integers(0, 10**6)),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    # Small catalogs often: that is where filters leave lists short and popularity has to fill.
    n_items=st.integers(min_value=3, max_value=10) | st.integers(min_value=3, max_value=40),
    seed=st.integers(min_value=0, max_value=2**16),
    top_k=st.integers(min_value=1, max_value=8),
    ops=st.lists(_op, max_size=30),
    with_popularity=st.booleans(),
)
def test_recommendations_never_break_the_filters(
    n_items: int, seed: int, top_k: int, ops: list[tuple[str, int, EventType, int]], with_popularity: bool
) -> None:
    """Whatever happened, lists hold no excluded, deleted or unknown item, best first, each explained."""
    params = CoreParams(top_k=top_k)
    vecs = _unit(n_items, seed=seed)
    world = World(vecs, params)
    users = ["u0", "u1", "u2"]
    # u0 starts with a click; u1 and u2 may stay cold or end up with only dislikes.
    world.event("u0", EventType.CLICK, f"i{seed % n_items}")
    for kind, user, ev_type, pick in ops:
        u, item = users[user], f"i{pick % n_items}"
        if kind in ("pos", "dislike"):  # events of deleted items arrive as unknown items
            world.event(u, ev_type, item)
        elif kind == "search":
            world.event(u, ev_type, query=f"query {pick % 7}", query_vec=_unit(1, seed=int(pick))[0])
        elif kind == "delete":  # history items included
            world.delete(item)
        elif item in world.index.item_ids(live_only=False):
            world.revive(item)
    states = [world.state(u) for u in users]
    covis = world.covis if with_popularity else CoVisitation(params)
    lists = recommend_many(states, world.index, params, covis)
    assert len(lists) == len(states)
    for state, recs in zip(states, lists):
        _check_list(recs, state, world.index, params)
        allowed_count = sum(1 for i in world.index.item_ids() if i not in state.excluded)
        has_reason = bool(_allowed_reasons(state, world.index))
        if query_vector(state, params) is not None and has_reason:
            # Over-fetching makes up for everything the filters removed.
            assert len(recs) == min(params.top_k, allowed_count)
        if with_popularity and not state.searching and len(recs) < params.top_k:
            # Popular items are candidates for everyone: a short list already holds all allowed ones.
            popular = {covis.name(int(i)) for i in covis.popular_ids()}
            popular_allowed = {i for i in popular if i in world.index and i not in state.excluded}
            assert popular_allowed <= {r.item_id for r in recs}


# -- cold users and popularity ----------------------------------------------------------------


def test_cold_user_gets_popular_items_excluding_purchases() -> None:
    params = CoreParams(top_k=3)
    world = World(_unit(10, seed=1), params)
    for item, times in (("i1", 5), ("i2", 4), ("i3", 3), ("i4", 2), ("i5", 1)):
        for _ in range(times):
            world.event("other", EventType.CLICK, item)
    # A user whose only event is a purchase of an item the index knows nothing about...
    world.event("cold", EventType.PURCHASE, "ghost")
    cold = world.states["cold"]
    assert query_vector(cold, params) is None
    # ... and a user who never did anything, and one whose purchase is the most popular item.
    world.delete("i3")
    buyer = apply_event(
        UserState.empty(DIM),
        Event(event_id="p", user_id="b", type=EventType.PURCHASE, item_id="i1", ts=1),
        params,
        item_vec=None,
    )
    lists = recommend_many([cold, UserState.empty(DIM), buyer], world.index, params, world.covis)
    w = params.w_popularity
    assert [(r.item_id, r.reason, r.score) for r in lists[0]] == [
        ("i1", POPULAR_REASON, pytest.approx(w)),
        ("i2", POPULAR_REASON, pytest.approx(w * 4 / 5, abs=1e-4)),
        ("i4", POPULAR_REASON, pytest.approx(w * 2 / 5, abs=1e-4)),
    ]
    assert [r.item_id for r in lists[1]] == ["i1", "i2", "i4"]
    assert [r.item_id for r in lists[2]] == ["i2", "i4", "i5"]


def test_cold_user_without_popularity_gets_nothing() -> None:
    params = CoreParams(top_k=3)
    idx = _catalog(_unit(5))
    assert recommend_many([UserState.empty(DIM)], idx, params, CoVisitation(params)) == [[]]
    assert recommend_many([], idx, params, CoVisitation(params)) == []


def test_popularity_fills_a_short_list() -> None:
    params = CoreParams(top_k=6)
    world = World(_unit(8, seed=4), params)
    for n in range(8):
        world.event("crowd", EventType.CLICK, f"i{n}")
    world.event("u", EventType.CLICK, "i0")
    for n in range(1, 6):  # the user bought most of the catalog
        world.event("u", EventType.PURCHASE, f"i{n}")
    (recs,) = recommend_many([world.states["u"]], world.index, params, world.covis)
    ids = [r.item_id for r in recs]
    assert sorted(ids) == ["i0", "i6", "i7"]


def test_heavy_buyer_still_gets_top_k() -> None:
    params = CoreParams(top_k=5)
    rng = np.random.default_rng(7)
    center = _unit(1, seed=8)[0]
    near = center + 0.3 * rng.normal(size=(20, DIM)).astype(np.float32)
    far = _unit(40, seed=9)
    vecs = np.concatenate([near / np.linalg.norm(near, axis=1, keepdims=True), far])
    world = World(vecs, params)
    # Purchase the 15 items nearest to the user's taste.
    order = np.argsort(-(vecs @ center))
    bought = [f"i{n}" for n in order[:15]]
    for item in bought:
        world.event("u", EventType.PURCHASE, item)
    state = world.states["u"]
    (recs,) = recommend_many([state], world.index, params, world.covis)
    assert len(recs) == 5
    assert not {r.item_id for r in recs} & set(bought)
    assert all(r.reason.startswith("because you purchased Title ") for r in recs)
    # And they are the best remaining items by cosine to the query vector.
    q = query_vector(state, params)
    remaining = [f"i{n}" for n in np.argsort(-(vecs @ q)) if f"i{n}" not in bought]
    assert [r.item_id for r in recs] == remaining[:5]


def test_batch_of_users_with_different_exclusions() -> None:
    params = CoreParams(top_k=3)
    world = World(_unit(30, seed=11), params)
    for n in range(10):
        world.event("heavy", EventType.PURCHASE, f"i{n}")
    world.event("light", EventType.CLICK, "i0")
    world.event("light", EventType.CLICK, "i1")
    states = [world.states["heavy"], world.states["light"], UserState.empty(DIM)]
    lists = recommend_many(states, world.index, params, world.covis)
    assert all(len(recs) == 3 for recs in lists)
    for state, recs in zip(states, lists):
        _check_list(recs, state, world.index, params)
    # The cold user gets what is popular: i0 and i1 were interacted with twice, the rest once.
    assert {r.item_id for r in lists[2][:2]} == {"i0", "i1"}
    assert all(r.reason == POPULAR_REASON for r in lists[2])


# -- reasons ----------------------------------------------------------------------------------


def test_reason_names_the_most_similar_history_item() -> None:
    e = np.eye(4, dtype=np.float32)
    vecs = np.stack([e[0], e[1], 0.9 * e[0] + 0.1 * e[2], 0.9 * e[1] + 0.1 * e[3], e[2], e[3]])
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    idx = ItemIndex(4, capacity=8)
    titles = ["Alien (1979)", "Notting Hill (1999)", "Aliens (1986)", "Love Actually (2003)", "X", "Y"]
    for n, (v, t) in enumerate(zip(vecs, titles)):
        idx.upsert(f"i{n}", t, [], f"h{n}", v)
    params = CoreParams(top_k=3)
    s = UserState.empty(4)
    s = apply_event(s, Event(event_id="1", user_id="u", type=EventType.PURCHASE, item_id="i0", ts=1), params, item_vec=vecs[0])
    s = apply_event(s, Event(event_id="2", user_id="u", type=EventType.BROWSE, item_id="i1", ts=2), params, item_vec=vecs[1])
    (recs,) = recommend_many([s], idx, params, CoVisitation(params))
    # i0 is purchased (excluded); the browsed i1 is no exclusion and explains itself.
    assert [(r.item_id, r.reason) for r in recs] == [
        ("i2", "because you purchased Alien (1979)"),
        ("i1", "because you viewed Notting Hill (1999)"),
        ("i3", "because you viewed Notting Hill (1999)"),
    ]


@pytest.mark.parametrize("exclude_recent", [False, True])
def test_recent_items_of_any_kind_are_excluded_only_when_so_set(exclude_recent: bool) -> None:
    params = CoreParams(top_k=30, exclude_recent=exclude_recent, recent_items=3)
    world = World(_unit(30, seed=5), params)
    for n, kind in enumerate([EventType.CLICK, EventType.BROWSE, EventType.CLICK, EventType.BROWSE]):
        world.event("u", kind, f"i{n}")
    world.event("other", EventType.CLICK, "i0")
    (recs,) = recommend_many([world.states["u"]], world.index, params, world.covis)
    listed = {r.item_id for r in recs}
    newest = {"i1", "i2", "i3"}  # recent_items=3: i0 has dropped out of the bounded history
    assert (listed & newest == set()) if exclude_recent else (newest <= listed)
    assert "i0" in listed, "beyond the bounded history an item may come back"


def test_search_reason_and_shortening() -> None:
    params = CoreParams(top_k=3)
    vecs = _unit(10, seed=2)
    idx = _catalog(vecs)
    long_query = "a   very long query " * 10
    s = apply_event(
        UserState.empty(DIM),
        Event(event_id="s", user_id="u", type=EventType.SEARCH, query=long_query, ts=1),
        params,
        query_vec=vecs[4],
    )
    (recs,) = recommend_many([s], idx, params, CoVisitation(params))
    assert recs[0].item_id == "i4"
    # Content-led (a search), and nobody has interacted with i4 yet: it also gets the fresh bonus.
    assert recs[0].score == pytest.approx(1.0 + params.w_fresh, abs=1e-3)
    for r in recs:
        assert r.reason.startswith("matches your search 'a very long query a very")
        assert r.reason.endswith("…'")
        inner = r.reason[len("matches your search '") : -1]
        assert len(inner) == 60


def test_search_reason_short_query() -> None:
    params = CoreParams(top_k=1)
    vecs = _unit(5, seed=3)
    s = apply_event(
        UserState.empty(DIM),
        Event(event_id="s", user_id="u", type=EventType.SEARCH, query="space  horror", ts=1),
        params,
        query_vec=vecs[2],
    )
    (recs,) = recommend_many([s], _catalog(vecs), params, CoVisitation(params))
    assert recs == [Scored("i2", pytest.approx(1.0 + params.w_fresh, abs=1e-3), "matches your search 'space horror'")]  # type: ignore[arg-type]


# -- filters ----------------------------------------------------------------------------------


def test_filters() -> None:
    idx = _catalog(_unit(4))
    idx.delete("i3")
    state = UserState(long=np.zeros(DIM, np.float32), short=np.zeros(DIM, np.float32), excluded=("i1",))
    assert is_allowed("i0", state, idx)
    assert not is_allowed("i1", state, idx)  # purchased / disliked
    assert not is_allowed("i3", state, idx)  # deleted
    assert not is_allowed("nope", state, idx)  # unknown
    cands = [("i3", 0.9), ("i0", 0.8), ("i1", 0.7), ("nope", 0.6), ("i2", 0.5)]
    assert list(allowed(cands, state, idx)) == [("i0", 0.8), ("i2", 0.5)]


# -- known bugs -------------------------------------------------------------------------------


def test_deleted_history_item_does_not_break_ranking() -> None:
    params = CoreParams(top_k=3)
    world = World(_unit(10, seed=5), params)
    world.event("u", EventType.CLICK, "i0")
    world.event("u", EventType.PURCHASE, "i1")
    world.delete("i0")
    (recs,) = recommend_many([world.states["u"]], world.index, params, world.covis)
    assert len(recs) == 3
    assert "i0" not in {r.item_id for r in recs} and "i1" not in {r.item_id for r in recs}


def test_dislike_only_user_gets_no_liked_reason() -> None:
    params = CoreParams(top_k=3)
    world = World(_unit(10, seed=6), params)
    for n in range(5):
        world.event("crowd", EventType.CLICK, f"i{n}")
    world.event("u", EventType.DISLIKE, "i0")
    state = world.states["u"]
    (recs,) = recommend_many([state], world.index, params, world.covis)
    assert recs
    for r in recs:
        assert r.reason == POPULAR_REASON or r.reason in _allowed_reasons(state, world.index), r.reason
