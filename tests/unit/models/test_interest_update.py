"""The interest update rule: how one event moves a user's state (models.interest)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.interest import INTEREST_TYPES, UserState, apply_event, decay, query_vector
from models.params import CoreParams
from models.vectors import stored
from schemas.records import Event, EventType

DIM = 16
PARAMS = CoreParams()


def _unit_vectors(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


VECS = _unit_vectors(8)


def _ev(kind: EventType, item: str | None = "i0", ts: int = 0, eid: str = "e", query: str | None = None) -> Event:
    if kind is EventType.SEARCH:
        return Event(event_id=eid, user_id="u", type=kind, query=query or "q", ts=ts)
    return Event(event_id=eid, user_id="u", type=kind, item_id=item, ts=ts)


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _base_state() -> UserState:
    """A user who clicked an unrelated item: vectors point somewhere else than VECS[0]."""
    return apply_event(UserState.empty(DIM), _ev(EventType.CLICK, "other", ts=1000, eid="b0"), PARAMS, item_vec=VECS[1])


# -- strength of each event type --------------------------------------------------------------


def test_purchase_moves_more_than_click_more_than_browse() -> None:
    base = _base_state()
    target = VECS[0]
    before_long, before_short = _cos(base.long, target), _cos(base.short, target)
    after = {
        kind: apply_event(base, _ev(kind, "i0", ts=1000, eid="x"), PARAMS, item_vec=target)
        for kind in (EventType.PURCHASE, EventType.CLICK, EventType.BROWSE)
    }
    for attr, before in (("long", before_long), ("short", before_short)):
        cp = _cos(getattr(after[EventType.PURCHASE], attr), target)
        cc = _cos(getattr(after[EventType.CLICK], attr), target)
        cb = _cos(getattr(after[EventType.BROWSE], attr), target)
        assert cp > cc > cb > before, (attr, cp, cc, cb, before)


def test_dislike_moves_away_and_excludes() -> None:
    base = apply_event(UserState.empty(DIM), _ev(EventType.CLICK, "i0", ts=1000, eid="b0"), PARAMS, item_vec=VECS[0])
    base = apply_event(base, _ev(EventType.CLICK, "i1", ts=1000, eid="b1"), PARAMS, item_vec=VECS[1])
    target = VECS[0]
    after = apply_event(base, _ev(EventType.DISLIKE, "i0", ts=1000, eid="d"), PARAMS, item_vec=target)
    assert _cos(after.long, target) < _cos(base.long, target)
    assert _cos(after.short, target) < _cos(base.short, target)
    assert "i0" in after.excluded
    assert "i0" not in base.excluded


def test_purchase_excludes_but_click_and_browse_do_not() -> None:
    base = _base_state()
    purchased = apply_event(base, _ev(EventType.PURCHASE, "p"), PARAMS, item_vec=VECS[2])
    clicked = apply_event(base, _ev(EventType.CLICK, "c"), PARAMS, item_vec=VECS[2])
    browsed = apply_event(base, _ev(EventType.BROWSE, "b"), PARAMS, item_vec=VECS[2])
    assert purchased.excluded == ("p",)
    assert clicked.excluded == ()
    assert browsed.excluded == ()


def test_exclusions_are_bounded_and_the_oldest_drop_out_first() -> None:
    params = CoreParams(excluded_items=3)
    s = _base_state()
    for n, kind in enumerate([EventType.PURCHASE, EventType.DISLIKE, EventType.PURCHASE, EventType.PURCHASE]):
        s = apply_event(s, _ev(kind, f"x{n}", eid=f"x{n}"), params, item_vec=VECS[n % len(VECS)])
    assert s.excluded == ("x1", "x2", "x3")
    # Buying an excluded item again makes it the newest exclusion: it outlives the ones after it.
    s = apply_event(s, _ev(EventType.PURCHASE, "x1", eid="again"), params, item_vec=VECS[1])
    s = apply_event(s, _ev(EventType.DISLIKE, "x4", eid="x4"), params, item_vec=VECS[0])
    assert s.excluded == ("x3", "x1", "x4")
    assert apply_event(s, _ev(EventType.PURCHASE, "y", eid="y"), CoreParams(excluded_items=0)).excluded == ()


# States hold float16-rounded vectors (models.vectors): comparisons allow that rounding, ~5e-4 relative.


def test_exact_update_is_weighted_sum() -> None:
    params = CoreParams(w_click=0.25)
    s = apply_event(UserState.empty(DIM), _ev(EventType.CLICK, "i0", ts=10), params, item_vec=VECS[0])
    np.testing.assert_allclose(s.long, 0.25 * VECS[0], rtol=2e-3, atol=2e-4)
    np.testing.assert_allclose(s.short, 0.25 * VECS[0], rtol=2e-3, atol=2e-4)
    assert s.long.dtype == np.float32 and s.short.dtype == np.float32


# -- search -----------------------------------------------------------------------------------


def test_search_steers_short_term_only_and_records_query() -> None:
    base = _base_state()
    q = VECS[3]
    after = apply_event(base, _ev(EventType.SEARCH, ts=base.last_ts, eid="s", query="space horror"), PARAMS, query_vec=q)
    np.testing.assert_array_equal(after.long, base.long)
    np.testing.assert_allclose(after.short, base.short + np.float32(PARAMS.w_search) * q, rtol=2e-3, atol=2e-4)
    assert _cos(after.short, q) > _cos(base.short, q)
    assert after.last_query == "space horror"
    assert after.query_vec is not None
    np.testing.assert_array_equal(after.query_vec, stored(q))
    # A search is not an item interaction: no history entry, no exclusion.
    assert after.recent == base.recent
    assert after.excluded == base.excluded


def test_search_without_vector_counts_but_moves_nothing() -> None:
    base = _base_state()
    after = apply_event(base, _ev(EventType.SEARCH, ts=base.last_ts, eid="s", query="x"), PARAMS, query_vec=None)
    np.testing.assert_array_equal(after.long, base.long)
    np.testing.assert_array_equal(after.short, base.short)
    assert after.last_query is None and after.query_vec is None
    assert after.events_applied == base.events_applied + 1


def test_newer_search_replaces_last_query() -> None:
    s = apply_event(UserState.empty(DIM), _ev(EventType.SEARCH, eid="s1", query="first"), PARAMS, query_vec=VECS[0])
    s = apply_event(s, _ev(EventType.SEARCH, eid="s2", query="second"), PARAMS, query_vec=VECS[1])
    assert s.last_query == "second"
    np.testing.assert_array_equal(s.query_vec, stored(VECS[1]))


# -- decay ------------------------------------------------------------------------------------


def test_decay_function() -> None:
    assert decay(60.0, 60_000) == pytest.approx(0.5)
    assert decay(60.0, 120_000) == pytest.approx(0.25)
    assert decay(60.0, 0) == 1.0
    assert decay(60.0, -10_000) == 1.0
    assert 0.5 < decay(60.0, 30_000) < 1.0


def test_short_and_long_halve_after_their_own_half_life() -> None:
    params = CoreParams(long_half_life_s=1000.0, short_half_life_s=10.0)
    s0 = apply_event(UserState.empty(DIM), _ev(EventType.CLICK, "i0", ts=5_000, eid="a"), params, item_vec=VECS[0])
    # One short half-life later, with an unknown item so nothing is added.
    s1 = apply_event(s0, _ev(EventType.CLICK, "zz", ts=5_000 + 10_000, eid="b"), params, item_vec=None)
    np.testing.assert_allclose(s1.short, s0.short * 0.5, rtol=2e-3, atol=2e-4)
    np.testing.assert_allclose(s1.long, s0.long * math.pow(0.5, 10.0 / 1000.0), rtol=2e-3, atol=2e-4)
    # One long half-life after s0.
    s2 = apply_event(s0, _ev(EventType.CLICK, "zz", ts=5_000 + 1_000_000, eid="c"), params, item_vec=None)
    np.testing.assert_allclose(s2.long, s0.long * 0.5, rtol=2e-3, atol=2e-4)
    np.testing.assert_allclose(s2.short, s0.short * math.pow(0.5, 100.0), rtol=2e-3, atol=1e-30)


def test_first_event_does_not_decay_from_epoch() -> None:
    s = apply_event(UserState.empty(DIM), _ev(EventType.CLICK, "i0", ts=10**12), PARAMS, item_vec=VECS[0])
    np.testing.assert_allclose(s.long, PARAMS.w_click * VECS[0], rtol=2e-3, atol=2e-4)


def test_out_of_order_event_does_not_decay_and_keeps_max_ts() -> None:
    params = CoreParams(long_half_life_s=1.0, short_half_life_s=1.0)
    s0 = apply_event(UserState.empty(DIM), _ev(EventType.CLICK, "i0", ts=50_000, eid="a"), params, item_vec=VECS[0])
    s1 = apply_event(s0, _ev(EventType.CLICK, "i1", ts=1_000, eid="b"), params, item_vec=VECS[1])
    np.testing.assert_allclose(s1.long, s0.long + np.float32(params.w_click) * VECS[1], rtol=2e-3, atol=2e-4)
    np.testing.assert_allclose(s1.short, s0.short + np.float32(params.w_click) * VECS[1], rtol=2e-3, atol=2e-4)
    assert s1.last_ts == 50_000
    s2 = apply_event(s1, _ev(EventType.CLICK, "zz", ts=52_000, eid="c"), params, item_vec=None)
    assert s2.last_ts == 52_000
    # Decay measured from the newest event time (50 s), i.e. two half-lives, not from 1 s.
    np.testing.assert_allclose(s2.long, s1.long * 0.25, rtol=2e-3, atol=2e-4)


# -- unknown items and bookkeeping ------------------------------------------------------------


def test_unknown_item_counts_and_still_excludes_on_purchase() -> None:
    base = _base_state()
    after = apply_event(base, _ev(EventType.PURCHASE, "ghost", ts=base.last_ts, eid="p"), PARAMS, item_vec=None)
    np.testing.assert_array_equal(after.long, base.long)
    np.testing.assert_array_equal(after.short, base.short)
    assert after.events_applied == base.events_applied + 1
    assert "ghost" in after.excluded
    assert after.recent[-1] == ("ghost", "purchase")


def test_bookkeeping_event_id_and_offset() -> None:
    s = UserState.empty(DIM)
    assert (s.events_applied, s.last_event_id, s.last_offset, s.last_ts) == (0, "", -1, 0)
    s = apply_event(s, _ev(EventType.CLICK, "i0", ts=7, eid="e1"), PARAMS, item_vec=VECS[0], offset=41)
    assert (s.events_applied, s.last_event_id, s.last_offset, s.last_ts) == (1, "e1", 41, 7)
    s = apply_event(s, _ev(EventType.BROWSE, "i1", ts=9, eid="e2"), PARAMS, item_vec=VECS[1], offset=42)
    assert (s.events_applied, s.last_event_id, s.last_offset, s.last_ts) == (2, "e2", 42, 9)
    # No offset given (in-process use): the last known offset is kept.
    s = apply_event(s, _ev(EventType.BROWSE, "i2", ts=9, eid="e3"), PARAMS, item_vec=VECS[2])
    assert (s.events_applied, s.last_event_id, s.last_offset) == (3, "e3", 42)
    assert s.recent == (("i0", "click"), ("i1", "browse"), ("i2", "browse"))


def test_recent_is_bounded_newest_last() -> None:
    params = CoreParams(recent_items=5)
    s = UserState.empty(DIM)
    for n in range(30):
        s = apply_event(s, _ev(EventType.CLICK, f"i{n}", ts=n, eid=f"e{n}"), params, item_vec=VECS[n % len(VECS)])
        assert len(s.recent) <= 5
    assert s.recent == tuple((f"i{n}", "click") for n in range(25, 30))
    assert s.events_applied == 30


# -- query vector -----------------------------------------------------------------------------


def test_query_vector_none_for_empty_state() -> None:
    assert query_vector(UserState.empty(DIM), PARAMS) is None


def test_query_vector_none_when_only_unknown_items() -> None:
    s = apply_event(UserState.empty(DIM), _ev(EventType.PURCHASE, "ghost"), PARAMS, item_vec=None)
    assert query_vector(s, PARAMS) is None


def test_query_vector_is_unit_blend() -> None:
    params = CoreParams(short_weight=0.5)
    s = UserState(long=VECS[0] * 3, short=VECS[1] * 0.1)
    q = query_vector(s, params)
    assert q is not None
    assert float(np.linalg.norm(q)) == pytest.approx(1.0, abs=1e-5)
    expected = VECS[0] + VECS[1]
    np.testing.assert_allclose(q, expected / np.linalg.norm(expected), atol=1e-5)
    # Only short-term signal (e.g. after a search): the query is the short direction.
    only_short = UserState(long=np.zeros(DIM, np.float32), short=VECS[2] * 0.3)
    np.testing.assert_allclose(query_vector(only_short, params), VECS[2], atol=1e-5)
    # Short weight 1.0 ignores long-term taste.
    np.testing.assert_allclose(query_vector(s, CoreParams(short_weight=1.0)), VECS[1], atol=1e-5)


# -- invariants -------------------------------------------------------------------------------

_KINDS = list(INTEREST_TYPES)
_event_specs = st.tuples(
    st.sampled_from(_KINDS),
    st.integers(min_value=-1, max_value=len(VECS) - 1),  # -1: unknown item / no query vector
    st.integers(min_value=0, max_value=10**13),
)


def _apply_spec(state: UserState, spec: tuple[EventType, int, int], n: int) -> UserState:
    kind, which, ts = spec
    vec = VECS[which] if which >= 0 else None
    if kind is EventType.SEARCH:
        return apply_event(state, _ev(kind, ts=ts, eid=f"e{n}", query=f"q{which}"), PARAMS, query_vec=vec, offset=n)
    return apply_event(state, _ev(kind, f"i{which}", ts=ts, eid=f"e{n}"), PARAMS, item_vec=vec, offset=n)


@settings(max_examples=150, deadline=None)
@given(history=st.lists(_event_specs, max_size=25), nxt=_event_specs)
def test_apply_event_invariants(history: list[tuple[EventType, int, int]], nxt: tuple[EventType, int, int]) -> None:
    state = UserState.empty(DIM)
    for n, spec in enumerate(history):
        state = _apply_spec(state, spec, n)
    long_before, short_before = state.long.copy(), state.short.copy()
    qv_before = None if state.query_vec is None else state.query_vec.copy()
    excluded_before, recent_before = state.excluded, state.recent

    after = _apply_spec(state, nxt, len(history))

    # The input state is untouched (pure step).
    np.testing.assert_array_equal(state.long, long_before)
    np.testing.assert_array_equal(state.short, short_before)
    if qv_before is not None:
        np.testing.assert_array_equal(state.query_vec, qv_before)
    assert state.excluded == excluded_before and state.recent == recent_before
    # Exactly one more event counted; time and offset never go back.
    assert after.events_applied == state.events_applied + 1 == len(history) + 1
    assert after.last_ts == max(state.last_ts, nxt[2])
    assert after.last_offset == len(history)
    # Vectors stay finite float32 of the same shape.
    for v in (after.long, after.short):
        assert v.shape == (DIM,) and v.dtype == np.float32
        assert np.all(np.isfinite(v))
    # Exclusions keep their order and add at most the new item at the end; both lists stay bounded.
    new = f"i{nxt[1]}"
    assert set(after.excluded) - set(state.excluded) <= {new}
    kept = [i for i in after.excluded if i != new]
    assert kept == [i for i in state.excluded if i in kept]
    assert len(after.excluded) <= PARAMS.excluded_items
    assert len(after.recent) <= PARAMS.recent_items
    q = query_vector(after, PARAMS)
    if q is not None:
        assert np.all(np.isfinite(q))
        assert float(np.linalg.norm(q)) == pytest.approx(1.0, abs=1e-4)
