"""Streaming co-visitation and popularity (models.covisitation).

What one event adds (`visit_for`), how `CoVisitation` accumulates it (forward decay, backward
pairs, order independence, rescaling, row pruning), how it scores and ranks, and how it is
persisted and restored (`take_dirty`, `record`, `restore`, `CoVisit` JSON).
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.covisitation import _EPOCH_HALF_LIVES, CoVisit, CoVisitation, anchors_of, visit_for
from models.interest import UserState, apply_event
from models.params import CoreParams
from schemas.records import Event, EventType

DIM = 4
PARAMS = CoreParams()
ITEMS = "abcdef"


def _ev(kind: EventType, item: str | None = "x", ts: int = 0, eid: str = "e") -> Event:
    if kind is EventType.SEARCH:
        return Event(event_id=eid, user_id="u", type=kind, query="q", ts=ts)
    return Event(event_id=eid, user_id="u", type=kind, item_id=item, ts=ts)


def _state(*recent: tuple[str, str]) -> UserState:
    return replace(UserState.empty(DIM), recent=tuple(recent))


def _click(item: str) -> tuple[str, str]:
    return (item, EventType.CLICK.value)


def _by_name(covis: CoVisitation, scores: np.ndarray) -> dict[str, float]:
    return {covis.name(i): float(s) for i, s in enumerate(scores) if s != 0.0}


def _assert_records_equal(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert got["count"] == pytest.approx(want["count"], rel=1e-9, abs=0)
    assert got["popularity"] == pytest.approx(want["popularity"], rel=1e-9, abs=0)
    assert set(got["pairs"]) == set(want["pairs"])
    for other, v in want["pairs"].items():
        assert got["pairs"][other] == pytest.approx(v, rel=1e-9, abs=0), other


# -- visit_for ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [EventType.SEARCH, EventType.DISLIKE])
def test_searches_and_dislikes_add_no_visit(kind: EventType) -> None:
    state = _state(_click("a"), _click("b"))
    assert visit_for(state, _ev(kind, "x", ts=5), PARAMS) is None


@pytest.mark.parametrize("kind", [EventType.CLICK, EventType.BROWSE, EventType.PURCHASE])
def test_item_events_pair_with_history_newest_first_weighted_by_distance(kind: EventType) -> None:
    state = _state(_click("a"), _click("b"), _click("c"))
    visit = visit_for(state, _ev(kind, "x", ts=1234), PARAMS)
    assert visit == CoVisit("x", 1234, (("c", 1.0), ("b", 0.5), ("a", pytest.approx(1 / 3))))


def test_first_item_of_a_user_is_a_visit_without_pairs() -> None:
    visit = visit_for(UserState.empty(DIM), _ev(EventType.CLICK, "x", ts=7), PARAMS)
    assert visit == CoVisit("x", 7, ())


def test_distance_counts_skipped_entries_dislikes_repeats_and_own_item() -> None:
    state = _state(
        _click("a"),  # distance 6: repeat of the newer "a" -> skipped
        ("x", EventType.CLICK.value),  # distance 5: the event's own item -> skipped
        ("b", EventType.PURCHASE.value),  # distance 4
        ("d", EventType.DISLIKE.value),  # distance 3: a dislike -> skipped
        ("c", EventType.BROWSE.value),  # distance 2
        _click("a"),  # distance 1
    )
    visit = visit_for(state, _ev(EventType.CLICK, "x", ts=1), PARAMS)
    assert visit is not None
    assert [item for item, _ in visit.before] == ["a", "c", "b"]
    assert [w for _, w in visit.before] == pytest.approx([1.0, 1 / 2, 1 / 4])


def test_a_disliked_item_is_not_paired_even_if_also_clicked_earlier() -> None:
    # The newest entry for "a" is a dislike; the older click of "a" is further away and is used.
    state = _state(_click("a"), _click("b"), ("a", EventType.DISLIKE.value))
    visit = visit_for(state, _ev(EventType.CLICK, "x"), PARAMS)
    assert visit is not None
    assert visit.before == (("b", 0.5), ("a", pytest.approx(1 / 3)))


def test_window_limits_how_far_back_pairs_reach() -> None:
    params = CoreParams(covis_window=2)
    state = _state(_click("a"), _click("b"), _click("c"))
    visit = visit_for(state, _ev(EventType.CLICK, "x"), params)
    assert visit is not None
    assert visit.before == (("c", 1.0), ("b", 0.5))
    # Skipped entries still use up the window.
    state = _state(_click("a"), _click("b"), ("c", EventType.DISLIKE.value))
    visit = visit_for(state, _ev(EventType.CLICK, "x"), params)
    assert visit is not None
    assert visit.before == (("b", 0.5),)


def test_visit_for_a_state_built_by_apply_event() -> None:
    state = UserState.empty(DIM)
    events = [
        _ev(EventType.CLICK, "a", ts=1, eid="1"),
        _ev(EventType.SEARCH, ts=2, eid="2"),  # not in the history at all: no distance used
        _ev(EventType.DISLIKE, "b", ts=3, eid="3"),
        _ev(EventType.PURCHASE, "c", ts=4, eid="4"),
    ]
    for e in events:
        state = apply_event(state, e, PARAMS)
    visit = visit_for(state, _ev(EventType.BROWSE, "d", ts=5), PARAMS)
    assert visit == CoVisit("d", 5, (("c", 1.0), ("a", pytest.approx(1 / 3))))


@settings(max_examples=60, deadline=None)
@given(
    recent=st.lists(
        st.tuples(st.sampled_from(ITEMS), st.sampled_from([k.value for k in EventType if k not in (EventType.SEARCH, EventType.ERASE)])),
        max_size=15,
    ),
    item=st.sampled_from(ITEMS),
    window=st.integers(min_value=1, max_value=20),
)
def test_visit_for_pairs_are_distinct_in_window_and_never_disliked(
    recent: list[tuple[str, str]], item: str, window: int
) -> None:
    params = CoreParams(covis_window=window)
    visit = visit_for(_state(*recent), _ev(EventType.CLICK, item), params)
    assert visit is not None
    names = [name for name, _ in visit.before]
    assert len(names) == len(set(names)) and item not in names
    newest_first = list(reversed(recent[-window:]))
    for name, w in visit.before:
        distance = round(1.0 / w)
        assert w == pytest.approx(1.0 / distance)
        assert 1 <= distance <= window
        entry = newest_first[distance - 1]
        assert entry[0] == name and entry[1] != EventType.DISLIKE.value
        # It is the nearest non-disliked occurrence of that item.
        assert all(n != name or k == EventType.DISLIKE.value for n, k in newest_first[: distance - 1])
    # Every eligible item in the window is paired.
    eligible = {n for n, k in newest_first if k != EventType.DISLIKE.value and n != item}
    assert set(names) == eligible
    # Newest first: distances strictly increase.
    assert [w for _, w in visit.before] == sorted((w for _, w in visit.before), reverse=True)


def test_anchors_are_newest_distinct_non_disliked_items_with_decay() -> None:
    params = CoreParams(covis_anchors=3, anchor_decay=0.5)
    state = _state(_click("z"), _click("a"), _click("b"), ("c", EventType.DISLIKE.value), _click("a"), _click("d"))
    assert anchors_of(state, params) == [("d", 1.0), ("a", 0.5), ("b", 0.25)]


# -- apply ----------------------------------------------------------------------------------------


def test_apply_forward_and_backward_pairs_counts_and_popularity() -> None:
    covis = CoVisitation(CoreParams(covis_backward=0.5))
    covis.apply(CoVisit("b", 1000, (("a", 1.0), ("c", 0.5))))
    assert covis.pair("a", "b") == pytest.approx(1.0)
    assert covis.pair("c", "b") == pytest.approx(0.5)
    assert covis.pair("b", "a") == pytest.approx(0.5)  # backward = covis_backward * forward
    assert covis.pair("b", "c") == pytest.approx(0.25)
    assert covis.pair("a", "c") == 0.0 and covis.pair("c", "a") == 0.0
    assert covis.count("b") == pytest.approx(1.0) and covis.popularity("b") == pytest.approx(1.0)
    # The earlier items get pairs, not counts: only the visited item was interacted with now.
    assert covis.count("a") == 0.0 and covis.popularity("a") == 0.0
    assert covis.neighbours("b") == pytest.approx({"a": 0.5, "c": 0.25})
    assert covis.applied == 1

    covis.apply(CoVisit("b", 1000, (("a", 1.0),)))
    assert covis.pair("a", "b") == pytest.approx(2.0)
    assert covis.pair("b", "a") == pytest.approx(1.0)
    assert covis.count("b") == pytest.approx(2.0) and covis.popularity("b") == pytest.approx(2.0)
    assert covis.count("unknown") == 0.0 and covis.pair("unknown", "b") == 0.0
    assert covis.neighbours("unknown") == {}


def test_no_backward_pairs_when_disabled() -> None:
    covis = CoVisitation(CoreParams(covis_backward=0.0))
    covis.apply(CoVisit("b", 0, (("a", 1.0),)))
    assert covis.pair("a", "b") == pytest.approx(1.0)
    assert covis.neighbours("b") == {}


def test_forward_decay_a_visit_one_half_life_later_weighs_twice() -> None:
    params = CoreParams(covis_half_life_s=100.0, popularity_half_life_s=50.0)
    covis = CoVisitation(params)
    covis.apply(CoVisit("old", 5_000, (("a", 1.0),)))
    covis.apply(CoVisit("new", 5_000 + 100_000, (("a", 1.0),)))  # ts in ms: 100 s later
    assert covis.count("new") / covis.count("old") == pytest.approx(2.0, rel=1e-12, abs=0)
    assert covis.pair("a", "new") / covis.pair("a", "old") == pytest.approx(2.0, rel=1e-12, abs=0)
    # Popularity fades with its own, shorter half-life: 100 s is two of them.
    assert covis.popularity("new") / covis.popularity("old") == pytest.approx(4.0, rel=1e-12, abs=0)


def test_a_late_event_weighs_what_its_own_time_says() -> None:
    params = CoreParams(covis_half_life_s=100.0, popularity_half_life_s=100.0)
    covis = CoVisitation(params)
    covis.apply(CoVisit("new", 300_000))
    covis.apply(CoVisit("old", 100_000))  # arrives later but happened 200 s earlier
    assert covis.count("new") / covis.count("old") == pytest.approx(4.0, rel=1e-12, abs=0)
    assert covis.popularity("new") / covis.popularity("old") == pytest.approx(4.0, rel=1e-12, abs=0)


def _visit_lists(max_ts_ms: int) -> st.SearchStrategy[list[CoVisit]]:
    return st.lists(
        st.builds(
            CoVisit,
            item_id=st.sampled_from(ITEMS),
            ts=st.integers(min_value=0, max_value=max_ts_ms),
            before=st.lists(
                st.tuples(st.sampled_from(ITEMS), st.floats(min_value=0.02, max_value=1.0)),
                max_size=4,
                unique_by=lambda p: p[0],
            ).map(tuple),
        ),
        min_size=1,
        max_size=25,
    )


# Half-lives of the property tests: 10**8 ms stays within one epoch, 10**9 ms crosses epochs.
_HL_PARAMS = CoreParams(covis_half_life_s=3_600.0, popularity_half_life_s=600.0)
_NO_RESCALE = _visit_lists(10**8)
_WITH_RESCALES = _visit_lists(10**9)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), visits=_NO_RESCALE)
def test_apply_order_independent_given_the_same_t0(data: st.DataObject, visits: list[CoVisit]) -> None:
    """Two workers sharing t0 that apply the same visits in different orders hold the same numbers."""
    params = _HL_PARAMS
    order = data.draw(st.permutations(visits))
    t0 = data.draw(st.integers(min_value=0, max_value=10**8)) / 1000.0
    first, second = CoVisitation(params), CoVisitation(params)
    first.restore(t0, [])
    second.restore(t0, [])
    for v in visits:
        first.apply(v)
    for v in order:
        second.apply(v)
    for item in ITEMS:
        _assert_records_equal(second.record(item), first.record(item))


def test_apply_order_independent_without_a_shared_t0() -> None:
    params = CoreParams(covis_half_life_s=100.0, popularity_half_life_s=100.0)
    visits = [CoVisit("a", 0), CoVisit("b", 100_000, (("a", 1.0),))]
    first, second = CoVisitation(params), CoVisitation(params)
    for v in visits:
        first.apply(v)
    for v in reversed(visits):
        second.apply(v)
    for item in "ab":
        _assert_records_equal(second.record(item), first.record(item))


def test_apply_order_independent_across_a_rescale() -> None:
    params = CoreParams(covis_half_life_s=1.0, popularity_half_life_s=1.0)
    visits = [CoVisit("a", 0), CoVisit("b", 700_000, (("a", 1.0),)), CoVisit("c", 650_000, (("a", 1.0),))]
    first, second = CoVisitation(params), CoVisitation(params)
    first.restore(0.0, [])
    second.restore(0.0, [])
    for v in visits:
        first.apply(v)
    for v in (visits[0], visits[2], visits[1]):
        second.apply(v)
    # t0 follows the newest event seen, in fixed epochs: both orders end on the same t0 and numbers.
    assert first.t0_s == second.t0_s
    for item in "abc":
        _assert_records_equal(second.record(item), first.record(item))
    for item in "abc":
        _assert_records_equal(second.record(item), first.record(item))


@pytest.mark.parametrize(("covis_hl", "pop_hl"), [(1.0, 1.0), (2.0, 1.0), (1.0, 2.0)])
def test_rescaling_keeps_numbers_finite_and_ratios_exact(covis_hl: float, pop_hl: float) -> None:
    params = CoreParams(covis_half_life_s=covis_hl, popularity_half_life_s=pop_hl, covis_backward=0.5)
    covis = CoVisitation(params)
    names = "abcz"
    timeline: list[tuple[str, float, str | None]] = []  # (item, ts_s, previous item)
    prev: str | None = None
    for step, t in enumerate(range(0, 3_001, 50)):  # 1500+ half-lives: many epochs
        # "z" is seen once, late: its weight must survive the rescales before and after it.
        for item, ts in ([("z", 2_540)] if t == 2_550 else []) + [(names[step % 3], t)]:
            timeline.append((item, float(ts), prev))
            covis.apply(CoVisit(item, ts * 1000, () if prev is None else ((prev, 1.0),)))
            prev = item
    end = timeline[-1][1]
    assert (end - timeline[0][1]) / max(covis_hl, pop_hl) > 2 * _EPOCH_HALF_LIVES
    assert covis.t0_s is not None and covis.t0_s > 0  # it did rescale

    def weight(t: float, hl: float) -> float:  # present value relative to the end: exact powers of two
        return math.ldexp(1.0, int((t - end) / hl))

    want_count = {n: math.fsum(weight(t, covis_hl) for i, t, _ in timeline if i == n) for n in names}
    want_pop = {n: math.fsum(weight(t, pop_hl) for i, t, _ in timeline if i == n) for n in names}
    want_pair = {
        (p, i): math.fsum(weight(t, covis_hl) for j, t, q in timeline if j == i and q == p)
        for i in names
        for p in names
        if p != i
    }
    for arr in (covis.counts, covis.popularities):
        assert np.isfinite(arr).all()
    for n in names:
        assert math.isfinite(covis.count(n)) and covis.count(n) > 0
        assert math.isfinite(covis.popularity(n)) and covis.popularity(n) > 0
        for m in names:
            assert math.isfinite(covis.pair(n, m))
    for n in names:
        assert covis.count(n) / covis.count("a") == pytest.approx(want_count[n] / want_count["a"], rel=1e-9, abs=0), n
        want = want_pop[n] / want_pop["a"]
        assert covis.popularity(n) / covis.popularity("a") == pytest.approx(want, rel=1e-9, abs=0), n
    # Pair weights and counts share the co-visitation clock: their ratio is exact too.
    assert covis.pair("c", "a") / covis.count("a") == pytest.approx(
        (want_pair[("c", "a")] + 0.5 * want_pair[("a", "c")]) / want_count["a"], rel=1e-9, abs=0
    )
    ref_pair = want_pair[("b", "c")]
    for (p, i), w in want_pair.items():
        if w:
            assert covis.pair(p, i) / covis.pair("b", "c") == pytest.approx(w / ref_pair, rel=1e-9, abs=0), (p, i)
            assert covis.pair(i, p) / covis.pair("b", "c") == pytest.approx(
                (0.5 * w + want_pair.get((i, p), 0.0)) / ref_pair, rel=1e-9, abs=0
            ), (i, p)


def test_rescale_marks_everything_dirty() -> None:
    covis = CoVisitation(CoreParams(covis_half_life_s=1.0, popularity_half_life_s=1.0))
    covis.apply(CoVisit("a", 0))
    covis.apply(CoVisit("b", 0))
    covis.take_dirty()
    covis.apply(CoVisit("c", int((_EPOCH_HALF_LIVES + 10) * 1000)))
    assert set(covis.take_dirty()) == {"a", "b", "c"}


# -- pruning --------------------------------------------------------------------------------------


def test_rows_are_pruned_to_the_strongest_neighbours() -> None:
    limit = 3
    covis = CoVisitation(CoreParams(covis_row_limit=limit, covis_backward=0.0))
    strong = ["s1", "s2", "s3"]
    for _ in range(5):
        for s in strong:
            covis.apply(CoVisit(s, 0, (("a", 1.0),)))
    for i in range(40):
        covis.apply(CoVisit(f"w{i}", 0, (("a", 0.1),)))
        assert len(covis.neighbours("a")) <= 2 * limit
    row = covis.neighbours("a")
    for s in strong:
        assert row[s] == pytest.approx(5.0)


def test_the_visited_items_own_backward_row_is_pruned_too() -> None:
    covis = CoVisitation(CoreParams(covis_row_limit=3, covis_backward=0.5))
    before = tuple((f"e{d}", 1.0 / d) for d in range(1, 11))
    covis.apply(CoVisit("z", 0, before))
    assert covis.neighbours("z") == pytest.approx({"e1": 0.5, "e2": 0.25, "e3": 0.5 / 3})


@settings(max_examples=40, deadline=None)
@given(
    visits=st.lists(
        st.tuples(st.integers(0, 29), st.lists(st.integers(0, 29), max_size=8, unique=True)), min_size=1, max_size=40
    ),
    limit=st.integers(1, 4),
)
def test_no_row_ever_exceeds_twice_the_limit(visits: list[tuple[int, list[int]]], limit: int) -> None:
    covis = CoVisitation(CoreParams(covis_row_limit=limit))
    for item, before in visits:
        covis.apply(CoVisit(f"i{item}", 0, tuple((f"i{b}", 1.0 / (d + 1)) for d, b in enumerate(before) if b != item)))
        assert all(len(covis.neighbours(covis.name(i))) <= 2 * limit for i in range(len(covis)))


# -- scoring --------------------------------------------------------------------------------------


def test_a_batch_scores_each_user_as_alone_and_says_which_row_is_which_anchor() -> None:
    covis = CoVisitation(CoreParams(covis_backward=0.5))
    for n, item in enumerate("abcdeab"):
        covis.apply(CoVisit(item, n * 1000, tuple((p, 1.0 / (d + 1)) for d, p in enumerate(reversed("abcdeab"[:n])))))
    covis.apply(CoVisit("lonely", 0))
    users = [[("a", 1.0), ("c", 0.8)], [], [("unknown", 1.0), ("lonely", 0.8), ("b", 0.64)], [("c", 1.0)]]
    batch = covis.anchor_scores(users)
    assert batch.scores.shape == (len(users), len(covis))
    for u, anchors in enumerate(users):
        np.testing.assert_allclose(batch.scores.toarray()[u], covis.scores(anchors), rtol=1e-12, atol=0)
    # Each slot names its anchor's dense id where the anchor is evidence (-1: unknown, or no pairs);
    # the weight is the anchor's own recency weight.
    assert batch.slot_id[2, 0] == -1 and batch.slot_id[2, 1] == -1 and batch.slot_id[2, 2] == covis.id_of("b")
    assert batch.slot_id[0, 1] == batch.slot_id[3, 0] == covis.id_of("c")
    assert batch.slot_weight[2, 2] == 0.64
    assert batch.rows.shape[0] == 3  # a, c and b: c is shared by two users
    keys = batch.pair_keys()
    assert (np.diff(keys) > 0).all()
    for u, anchors in enumerate(users):
        for slot, (anchor, _) in enumerate(anchors):
            row = batch.slot_row[u, slot]
            if row >= 0:
                got = dict(zip(batch.rows[row].indices.tolist(), batch.rows[row].data.tolist()))
                assert got == {covis.id_of(n): v for n, v in covis.neighbours(anchor).items()}


def test_scores_follow_the_documented_formula() -> None:
    params = CoreParams(covis_backward=0.5, anchor_norm=0.5, candidate_norm=0.3)
    covis = CoVisitation(params)
    covis.apply(CoVisit("a", 0))
    covis.apply(CoVisit("b", 0, (("a", 1.0),)))
    covis.apply(CoVisit("c", 0, (("b", 1.0), ("a", 0.5))))
    covis.apply(CoVisit("a", 0, (("c", 1.0), ("b", 0.5))))
    # By hand (all at t0, so every gain is 1):
    count = {"a": 2.0, "b": 1.0, "c": 1.0}
    pair = {
        ("a", "b"): 1.0 + 0.25,  # forward of visit 2 + backward of visit 4 (0.5 * 0.5)
        ("b", "a"): 0.5 + 0.5,  # backward of visit 2 + forward of visit 4
        ("b", "c"): 1.0,
        ("c", "b"): 0.5,
        ("a", "c"): 0.5 + 0.5,  # forward of visit 3 + backward of visit 4
        ("c", "a"): 0.25 + 1.0,  # backward of visit 3 + forward of visit 4
    }
    for (x, y), v in pair.items():
        assert covis.pair(x, y) == pytest.approx(v), (x, y)
    for n, c in count.items():
        assert covis.count(n) == pytest.approx(c)

    anchors = [("b", 1.0), ("a", 0.8), ("never-seen", 5.0)]
    n_before = len(covis)
    scores = covis.scores(anchors)
    assert len(covis) == n_before  # unknown anchors are not interned
    assert scores.shape == (len(covis),)
    for cand in "abc":
        want = sum(
            w * pair.get((a, cand), 0.0) / count[a] ** 0.5 for a, w in anchors if a in count
        ) / count[cand] ** 0.3
        assert scores[covis.id_of(cand)] == pytest.approx(want, rel=1e-12, abs=0), cand
    assert scores[covis.id_of("b")] > 0 and scores[covis.id_of("c")] > 0


def test_unknown_or_pairless_anchors_score_nothing() -> None:
    covis = CoVisitation(PARAMS)
    covis.apply(CoVisit("a", 0))
    covis.apply(CoVisit("b", 0, (("a", 1.0),)))
    covis.apply(CoVisit("lonely", 0))
    assert not covis.scores([("unknown", 1.0)]).any()
    assert not covis.scores([("lonely", 1.0)]).any()
    assert not covis.scores([]).any()
    # An unknown anchor next to a known one changes nothing.
    np.testing.assert_array_equal(covis.scores([("a", 1.0), ("zzz", 9.0)]), covis.scores([("a", 1.0)]))


def test_scores_see_pairs_added_after_an_earlier_scoring() -> None:
    covis = CoVisitation(CoreParams(covis_backward=0.0))
    covis.apply(CoVisit("a", 0))
    covis.apply(CoVisit("b", 0, (("a", 1.0),)))
    first = _by_name(covis, covis.scores([("a", 1.0)]))
    assert set(first) == {"b"}
    covis.apply(CoVisit("c", 0, (("a", 1.0),)))  # the cached row of "a" must be refreshed
    assert set(_by_name(covis, covis.scores([("a", 1.0)]))) == {"b", "c"}


def test_items_never_visited_here_are_no_evidence() -> None:
    """Pairs whose anchor or candidate has no count (visits older than the topic) must not explode."""
    covis = CoVisitation(CoreParams())
    covis.apply(CoVisit("b", 0, (("a", 1.0),)))  # "a" itself was never visited here
    covis.apply(CoVisit("c", 0))
    covis.apply(CoVisit("d", 0, (("c", 1.0),)))
    scores = _by_name(covis, covis.scores([("a", 1.0), ("c", 1.0)]))
    assert set(scores) == {"d"} and all(np.isfinite(list(scores.values())))
    # ... and "a", reached backwards from "b", is no candidate either.
    assert _by_name(covis, covis.scores([("b", 1.0)])) == {}


# -- popularity -----------------------------------------------------------------------------------


def test_popular_ids_most_popular_first_bounded_and_updated() -> None:
    covis = CoVisitation(CoreParams(popular_candidates=2))
    for item in ["a", "a", "a", "b", "c", "c"]:
        covis.apply(CoVisit(item, 0, (("only-paired", 1.0),)))
    assert [covis.name(i) for i in covis.popular_ids()] == ["a", "c"]
    for _ in range(3):
        covis.apply(CoVisit("b", 0))
    assert [covis.name(i) for i in covis.popular_ids()] == ["b", "a"]


def test_popular_ids_leave_out_items_nobody_visited() -> None:
    covis = CoVisitation(CoreParams(popular_candidates=10))
    assert len(covis.popular_ids()) == 0
    covis.apply(CoVisit("a", 0, (("p", 1.0), ("q", 0.5))))
    covis.id_of("interned-only")
    assert [covis.name(i) for i in covis.popular_ids()] == ["a"]


def test_popular_ids_prefer_recent_visits() -> None:
    params = CoreParams(popularity_half_life_s=60.0)
    covis = CoVisitation(params)
    for _ in range(3):
        covis.apply(CoVisit("old", 0))
    covis.apply(CoVisit("new", 3_600_000))  # one hour = 60 half-lives later
    assert [covis.name(i) for i in covis.popular_ids()] == ["new", "old"]


def test_many_items_grow_the_arrays() -> None:
    covis = CoVisitation(CoreParams(popular_candidates=5))
    for i in range(2_100):
        covis.apply(CoVisit(f"i{i}", i, ((f"i{i - 1}", 1.0),) if i else ()))
    assert len(covis) == 2_100
    assert covis.count("i2099") > covis.count("i0") > 0
    assert [covis.name(i) for i in covis.popular_ids()] == [f"i{i}" for i in range(2_099, 2_094, -1)]


# -- persistence ----------------------------------------------------------------------------------


def test_take_dirty_returns_only_what_changed_since_the_last_call() -> None:
    covis = CoVisitation(CoreParams(covis_backward=0.5))
    covis.apply(CoVisit("a", 0))
    assert set(covis.take_dirty()) == {"a"}
    assert covis.take_dirty() == {}
    covis.apply(CoVisit("b", 0, (("a", 1.0),)))
    dirty = covis.take_dirty()
    assert set(dirty) == {"a", "b"}  # a's row changed too
    assert dirty["a"] == covis.record("a") and dirty["b"] == covis.record("b")
    covis.apply(CoVisit("c", 0))
    covis.id_of("interned-only")
    assert set(covis.take_dirty()) == {"c"}


def _state_by_name(covis: CoVisitation) -> dict[str, Any]:
    names = [covis.name(i) for i in range(len(covis))]
    pops = covis.popularities
    pop = [(float(pops[i]), covis.name(i)) for i in covis.popular_ids()]
    # Equal popularities may come in either order: compare ties sorted by name.
    pop.sort(key=lambda p: (-p[0], p[1]))
    return {
        "counts": {n: covis.count(n) for n in names},
        "popular": pop,
        "scores": {n: _by_name(covis, covis.scores([(n, 1.0)])) for n in names},
        "mixed": _by_name(covis, covis.scores([(n, 0.9**k) for k, n in enumerate(sorted(names))])),
    }


@settings(max_examples=50, deadline=None)
@given(visits=_WITH_RESCALES, later=_WITH_RESCALES, save_every=st.integers(1, 5))
def test_restore_from_records_reproduces_the_store(
    visits: list[CoVisit], later: list[CoVisit], save_every: int
) -> None:
    params = _HL_PARAMS
    original = CoVisitation(params)
    store: dict[str, dict[str, Any]] = {}
    for n, v in enumerate(visits, start=1):
        original.apply(v)
        if n % save_every == 0:
            store.update(original.take_dirty())
    store.update(original.take_dirty())

    every = CoVisitation(params)
    every.restore(original.t0_s, [(original.name(i), original.record(original.name(i))) for i in range(len(original))])
    saved = CoVisitation(params)
    saved.restore(original.t0_s, json.loads(json.dumps(store)).items())  # as a store would hand them back
    assert saved.take_dirty() == {}
    want = _state_by_name(original)
    for restored in (every, saved):
        assert restored.t0_s == original.t0_s
        assert _state_by_name(restored) == want

    # A restarted worker goes on exactly like one that never stopped.
    for v in later:
        original.apply(v)
        saved.apply(v)
    assert _state_by_name(saved) == _state_by_name(original)


def test_restore_forgets_what_was_there() -> None:
    covis = CoVisitation(PARAMS)
    covis.apply(CoVisit("a", 0, (("b", 1.0),)))
    covis.restore(None, [])
    assert len(covis) == 0 and covis.t0_s is None and covis.count("a") == 0.0
    assert len(covis.popular_ids()) == 0


# -- CoVisit JSON ---------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(
    visit=st.builds(
        CoVisit,
        item_id=st.text(min_size=1, max_size=20),
        ts=st.integers(min_value=0, max_value=2**53),
        before=st.lists(
            st.tuples(st.text(min_size=1, max_size=20), st.floats(min_value=1e-6, max_value=1.0)), max_size=6
        ).map(tuple),
    )
)
def test_covisit_json_round_trip(visit: CoVisit) -> None:
    assert CoVisit.from_json(json.loads(json.dumps(visit.to_json()))) == visit


def test_covisit_from_json_defaults_and_types() -> None:
    assert CoVisit.from_json({"item_id": "x", "ts": 5}) == CoVisit("x", 5, ())
    got = CoVisit.from_json({"item_id": "x", "ts": 5.0, "before": [["a", 1], ["b", 0.5]]})
    assert got == CoVisit("x", 5, (("a", 1.0), ("b", 0.5)))
    assert isinstance(got.ts, int) and all(isinstance(w, float) for _, w in got.before)
