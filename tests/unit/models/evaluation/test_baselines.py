"""The streaming baselines recstream is compared with (models.evaluation.baselines).

The list contract every baseline keeps (no excluded items, no duplicates, at most k), and what
each one ranks by: all-time counts, a sliding window, cosine co-occurrence, an embedding EMA, noise.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.evaluation import baselines
from models.evaluation.baselines import (
    AllTimePopularity,
    CoOccurrence,
    ContentOnly,
    RandomBaseline,
    RecentPopularityBaseline,
    SessionKNN,
)
from models.evaluation.retrained import ALSConfig, RetrainedALS, RetrainedSASRec, SASRecConfig
from schemas.records import Event, EventType

CATALOG = [f"i{n}" for n in range(10)]
DIM = 4


def _unit_vectors(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _ev(user: str, item: str | None, ts: int = 0, kind: EventType = EventType.CLICK) -> Event:
    if kind is EventType.SEARCH:
        return Event(event_id=f"e{ts}", user_id=user, type=kind, query="q", ts=ts)
    return Event(event_id=f"e{ts}", user_id=user, type=kind, item_id=item, ts=ts)


def _feed(model: object, stream: list[tuple[str, str]]) -> None:
    seen: dict[str, set[str]] = {}
    for ts, (user, item) in enumerate(stream):
        s = seen.setdefault(user, set())
        s.add(item)
        model.learn(_ev(user, item, ts), s)  # type: ignore[attr-defined]


def _capture_scores(model: CoOccurrence | ContentOnly) -> list[np.ndarray]:
    """Replace the instance's top-k step to see the dense score vector it ranks."""
    captured: list[np.ndarray] = []

    def top(scores: np.ndarray, k: int, exclude: set[str]) -> list[str]:
        captured.append(np.array(scores, dtype=np.float64))
        return []

    model._top = top  # type: ignore[method-assign]
    return captured


def _all_models() -> list[object]:
    return [
        RandomBaseline(CATALOG, seed=3),
        AllTimePopularity(CATALOG),
        RecentPopularityBaseline(window=7),
        CoOccurrence(CATALOG, window=3),
        ContentOnly(CATALOG, _unit_vectors(len(CATALOG)), ema=0.5),
        SessionKNN(query_items=3, neighbours=4),
        RetrainedALS(CATALOG, total_events=10, config=ALSConfig(factors=4, iterations=2, every=0.5)),
        RetrainedSASRec(CATALOG, total_events=10, config=SASRecConfig(max_len=4, dim=8, epochs=1, every=0.5)),
    ]


# -- the list contract ----------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    stream=st.lists(
        st.tuples(st.sampled_from(["u0", "u1", "u2"]), st.sampled_from(CATALOG + ["not-in-catalog"])), max_size=30
    ),
    asks=st.lists(
        st.tuples(
            st.sampled_from(["u0", "u1", "u2", "stranger"]),
            st.integers(min_value=0, max_value=14),
            st.sets(st.sampled_from(CATALOG + ["not-in-catalog", "other"]), max_size=12),
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_lists_are_distinct_catalog_items_outside_exclude_and_at_most_k(
    stream: list[tuple[str, str]], asks: list[tuple[str, int, set[str]]]
) -> None:
    for model in _all_models():
        _feed(model, stream)
        for user, k, exclude in asks:
            top = model.recommend(user, k, exclude)  # type: ignore[attr-defined]
            assert len(top) <= k, model
            assert len(set(top)) == len(top), (model, top)
            assert not set(top) & exclude, (model, top, exclude)
            assert set(top) <= set(CATALOG) | {"not-in-catalog"}, (model, top)
            if isinstance(model, (RandomBaseline, AllTimePopularity)):
                # These rank the whole catalog: the list is as long as it can be.
                assert len(top) == min(k, len(set(CATALOG) - exclude)), (model, top)


def test_excluding_everything_gives_an_empty_list() -> None:
    for model in _all_models():
        _feed(model, [("u0", i) for i in CATALOG])
        assert model.recommend("u0", 5, set(CATALOG) | {"not-in-catalog"}) == []  # type: ignore[attr-defined]


# -- popularity -----------------------------------------------------------------------------------


def test_all_time_popularity_ranks_by_counts() -> None:
    model = AllTimePopularity(["a", "b", "c", "d"])
    _feed(model, [("u0", "a"), ("u1", "c"), ("u0", "a"), ("u2", "b"), ("u1", "a"), ("u2", "c"), ("u0", "zz")])
    assert model.recommend("anyone", 3, set()) == ["a", "c", "b"]
    assert model.recommend("anyone", 2, {"a"}) == ["c", "b"]
    assert model.recommend("anyone", 4, set())[:3] == ["a", "c", "b"]  # d (never seen) fills last
    # Old events never fade: a late burst must overtake the all-time count to change the order.
    _feed(model, [("u3", "b")] * 2)
    assert model.recommend("anyone", 3, set()) == ["a", "b", "c"]


def test_recent_popularity_forgets_events_older_than_its_window() -> None:
    model = RecentPopularityBaseline(window=3)
    assert "3" in model.name
    _feed(model, [("u0", "a"), ("u0", "a"), ("u1", "b"), ("u1", "c"), ("u2", "c")])
    # The window holds b, c, c: both "a" events have fallen out.
    assert model.recommend("anyone", 5, set()) == ["c", "b"]
    assert model.recommend("anyone", 5, {"c"}) == ["b"]
    assert model.recommend("anyone", 1, set()) == ["c"]
    model.learn(_ev("u0", None, 99, EventType.SEARCH), set())  # searches carry no item: ignored
    assert model.recommend("anyone", 5, set()) == ["c", "b"]


# -- co-occurrence --------------------------------------------------------------------------------

# u1: a b c, u2: a b, u3: b d  ->  counts a=2 b=3 c=1 d=1; C[a,b]=2, C[a,c]=C[b,c]=C[b,d]=1.
_CO_STREAM = [("u1", "a"), ("u1", "b"), ("u1", "c"), ("u2", "a"), ("u2", "b"), ("u3", "b"), ("u3", "d")]


def test_co_occurrence_scores_by_the_cosine_formula() -> None:
    model = CoOccurrence(["a", "b", "c", "d", "e"])
    _feed(model, _CO_STREAM)
    captured = _capture_scores(model)
    model.recommend("u2", 5, set())  # anchors: a, b
    (scores,) = captured
    want = {
        "a": 2 / math.sqrt(3 * 2),  # from b
        "b": 2 / math.sqrt(2 * 3),  # from a
        "c": 1 / math.sqrt(2 * 1) + 1 / math.sqrt(3 * 1),
        "d": 1 / math.sqrt(3 * 1),
    }
    for item, v in want.items():
        assert scores[model.row[item]] == pytest.approx(v, rel=1e-6), item
    assert scores[model.row["e"]] == -np.inf  # never co-occurred: not a candidate


def test_co_occurrence_only_recommends_co_occurring_items() -> None:
    model = CoOccurrence(["a", "b", "c", "d", "e"])
    _feed(model, _CO_STREAM)
    assert model.recommend("u2", 10, {"a", "b"}) == ["c", "d"]
    assert model.recommend("u3", 10, {"b", "d"}) == ["a", "c"]  # a: 2/sqrt(3*2) > c: 1/sqrt(3)
    assert model.recommend("stranger", 10, set()) == []


def test_co_occurrence_normalisation_lets_a_rare_item_beat_a_popular_one() -> None:
    # x co-occurs twice with popular p (count 16) and once with rare r (count 1).
    stream = [("v1", "x"), ("v1", "p"), ("v2", "x"), ("v2", "p"), ("v3", "x"), ("v3", "r")]
    stream += [(f"w{n}", "p") for n in range(14)]
    model = CoOccurrence(["x", "p", "r"])
    _feed(model, stream)
    _feed(model, [("me", "x")])
    assert model.recommend("me", 2, {"x"}) == ["r", "p"]  # 1/sqrt(4*1) > 2/sqrt(4*16)


def test_co_occurrence_window_bounds_pairs_and_anchors() -> None:
    model = CoOccurrence(["a", "b", "c", "d"], window=1)
    _feed(model, [("u", "a"), ("u", "b"), ("u", "c")])
    captured = _capture_scores(model)
    model.recommend("u", 4, set())
    (scores,) = captured
    # Only consecutive items paired (a-b, b-c; not a-c); only the newest item (c) is an anchor.
    assert scores[model.row["b"]] > 0
    assert scores[model.row["a"]] == -np.inf and scores[model.row["d"]] == -np.inf


def test_co_occurrence_refuses_catalogs_over_the_dense_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(baselines, "MAX_DENSE_ITEMS", 3)
    CoOccurrence(["a", "b", "c"])  # at the limit: fine
    with pytest.raises(ValueError, match="not supported"):
        CoOccurrence(["a", "b", "c", "d"])


# -- content --------------------------------------------------------------------------------------


def test_content_only_follows_the_ema_of_item_vectors() -> None:
    ids = ["a", "b", "c", "d"]
    vecs = _unit_vectors(4, seed=1)
    model = ContentOnly(ids, vecs, ema=0.3)
    captured = _capture_scores(model)
    assert model.recommend("u", 3, set()) == []  # unknown user
    assert captured == []  # nothing ranked for a user without history
    _feed(model, [("u", "a"), ("u", "b"), ("u", "c")])
    model.recommend("u", 3, set())
    u = 0.7 * (0.7 * vecs[0] + 0.3 * vecs[1]) + 0.3 * vecs[2]
    np.testing.assert_allclose(captured[0], vecs @ u, rtol=1e-5, atol=1e-6)


def test_content_only_switches_taste_when_the_ema_is_large() -> None:
    e = np.eye(DIM, dtype=np.float32)
    ids = ["old1", "old2", "new", "new-twin", "other"]
    vecs = np.stack([e[0], e[0] * 0.6 + e[3] * 0.8, e[1], e[1], e[2]])
    fast = ContentOnly(ids, vecs, ema=0.9)
    slow = ContentOnly(ids, vecs, ema=0.1)
    history = [("u", "old1"), ("u", "old1"), ("u", "old1"), ("u", "new")]
    for model in (fast, slow):
        _feed(model, history)
    assert fast.recommend("u", 1, {"new"}) == ["new-twin"]
    assert slow.recommend("u", 1, {"new"}) == ["old1"]
    assert fast.recommend("nobody", 3, set()) == []
    # Events for items outside the catalog are ignored.
    fast.learn(_ev("u", "unknown", 5), {"unknown"})
    assert fast.recommend("u", 1, {"new"}) == ["new-twin"]


# -- random ---------------------------------------------------------------------------------------


def test_random_is_deterministic_per_seed() -> None:
    ids = [f"i{n}" for n in range(50)]
    one, two, other = RandomBaseline(ids, seed=7), RandomBaseline(ids, seed=7), RandomBaseline(ids, seed=8)
    lists_one = [one.recommend("u", 10, {"i0"}) for _ in range(5)]
    lists_two = [two.recommend("u", 10, {"i0"}) for _ in range(5)]
    lists_other = [other.recommend("u", 10, {"i0"}) for _ in range(5)]
    assert lists_one == lists_two
    assert lists_one != lists_other
    assert len({tuple(x) for x in lists_one}) > 1  # a new draw on every call


# -- session-kNN ----------------------------------------------------------------------------------


def test_session_knn_recommends_what_sessions_sharing_the_newest_items_went_on_to() -> None:
    model = SessionKNN(query_items=2, neighbours=10)
    # Two earlier sessions: one shares i1 and goes on to i5, one shares nothing and holds i9.
    _feed(model, [("a", "i0"), ("a", "i1"), ("a", "i5"), ("b", "i8"), ("b", "i9")])
    model.learn(_ev("u", "i1", 10), {"i1"})
    top = model.recommend("u", 3, {"i1"})
    assert set(top) == {"i0", "i5"}, "only the neighbour session's items; nothing from the unrelated one"
    assert model.recommend("u", 3, {"i1", "i0"}) == ["i5"]


def test_session_knn_weighs_the_newest_items_most_and_ignores_the_users_own_session() -> None:
    model = SessionKNN(query_items=2, neighbours=10)
    _feed(model, [("a", "i0"), ("a", "i2"), ("b", "i1"), ("b", "i3")])
    seen: set[str] = set()
    for ts, item in enumerate(["i0", "i1"]):  # i1 is the newest: b's session must come first
        seen.add(item)
        model.learn(_ev("u", item, 100 + ts), seen)
    assert model.recommend("u", 2, seen) == ["i3", "i2"]


def test_a_gap_starts_a_new_session() -> None:
    model = SessionKNN(session_gap_s=60, query_items=1, neighbours=10)
    model.learn(_ev("a", "i0", 0), {"i0"})
    model.learn(_ev("a", "i1", 1_000), {"i0", "i1"})  # same session: i0 and i1 together
    model.learn(_ev("a", "i2", 1_000 + 61_000), {"i0", "i1", "i2"})  # a new session
    model.learn(_ev("u", "i1", 200_000), {"i1"})
    assert model.recommend("u", 5, {"i1"}) == ["i0"], "i2 was a later session of a, not a neighbour of i1"
