"""The prequential (test-then-learn) harness (models.evaluation.prequential).

Cold vs warm events, the exclusions every model gets, test-then-learn order, the rank metrics
(hit, ndcg, mrr), the new-item slice, coverage, diversity, windows and the JSON-safe summary.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import numpy as np
import pytest

from models.evaluation.prequential import Report, evaluate, summary, tied_seconds
from schemas.records import Event, EventType

K = 5


def _ev(user: str, item: str | None, ts: int, kind: EventType = EventType.CLICK) -> Event:
    eid = f"{user}-{ts}"
    if kind is EventType.SEARCH:
        return Event(event_id=eid, user_id=user, type=kind, query="q", ts=ts)
    return Event(event_id=eid, user_id=user, type=kind, item_id=item, ts=ts)


def _stream(*pairs: tuple[str, str | None]) -> list[Event]:
    """Events in the given order, ts in ms; a None item is a search."""
    return [
        _ev(user, item, 1_000 * n, EventType.SEARCH if item is None else EventType.CLICK)
        for n, (user, item) in enumerate(pairs)
    ]


def _fillers(n: int) -> list[str]:
    return [f"filler{i}" for i in range(n)]


class Oracle:
    """Knows the stream: puts the next event's item at `rank` (1-based), fillers elsewhere."""

    def __init__(self, events: Sequence[Event], rank: int = 1, length: int = K, respect_exclude: bool = True,
                 hit_if: object = None) -> None:
        self.name = "oracle"
        self._events = list(events)
        self._next = 0
        self._rank = rank
        self._length = length
        self._respect = respect_exclude
        self._hit_if = hit_if  # optional predicate(target, exclude) -> bool

    def recommend(self, user_id: str, k: int, exclude: set[str]) -> list[str]:
        target = self._events[self._next].item_id
        assert target is not None and self._events[self._next].user_id == user_id
        top = _fillers(self._length)
        want = not (self._respect and target in exclude)
        if self._hit_if is not None:
            want = want and self._hit_if(target, exclude)  # type: ignore[operator]
        if want and self._rank <= self._length:
            top[self._rank - 1] = target
        return top

    def learn(self, event: Event, seen: set[str]) -> None:
        assert event is self._events[self._next]
        self._next += 1


class Recorder:
    """Logs every call with a copy of the sets it was given."""

    name = "recorder"

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, frozenset[str]]] = []

    def recommend(self, user_id: str, k: int, exclude: set[str]) -> list[str]:
        assert k == K
        self.calls.append(("recommend", user_id, frozenset(exclude)))
        return []

    def learn(self, event: Event, seen: set[str]) -> None:
        self.calls.append(("learn", event.event_id, frozenset(seen)))


class LastLearned:
    """Recommends whatever it learned last (ignoring exclusions): hits only if it learned too early."""

    name = "last learned"

    def __init__(self) -> None:
        self.last: str | None = None

    def recommend(self, user_id: str, k: int, exclude: set[str]) -> list[str]:
        return [self.last] if self.last else []

    def learn(self, event: Event, seen: set[str]) -> None:
        self.last = event.item_id


class Fixed:
    name = "fixed"

    def __init__(self, top: list[str]) -> None:
        self.top = top

    def recommend(self, user_id: str, k: int, exclude: set[str]) -> list[str]:
        return list(self.top)

    def learn(self, event: Event, seen: set[str]) -> None:
        pass


TWO_USERS = _stream(("u1", "x1"), ("u2", "y1"), ("u1", "x2"), ("u1", "x3"), ("u2", "y2"))


# -- cold and warm --------------------------------------------------------------------------------


def test_first_event_of_each_user_is_cold_and_not_in_hit_at_k() -> None:
    m = evaluate(Oracle(TWO_USERS), TWO_USERS, k=K).metrics
    assert m["cold_events"] == 2.0 and m["warm_events"] == 3.0
    assert m[f"hit@{K}"] == 1.0 and m[f"cold_user_hit@{K}"] == 1.0

    only_cold = Oracle(TWO_USERS, hit_if=lambda target, exclude: not exclude)
    m = evaluate(only_cold, TWO_USERS, k=K).metrics
    assert m[f"hit@{K}"] == 0.0 and m[f"cold_user_hit@{K}"] == 1.0

    only_warm = Oracle(TWO_USERS, hit_if=lambda target, exclude: bool(exclude))
    m = evaluate(only_warm, TWO_USERS, k=K).metrics
    assert m[f"hit@{K}"] == 1.0 and m[f"cold_user_hit@{K}"] == 0.0


def test_a_search_does_not_make_a_user_warm() -> None:
    events = _stream(("u1", None), ("u1", "a"), ("u1", None), ("u1", "b"))
    report = evaluate(Oracle(events), events, k=K)
    assert report.metrics["cold_events"] == 1.0 and report.metrics["warm_events"] == 1.0
    assert report.ranks.tolist() == [1]


def test_no_warm_events_gives_zero_rates_not_errors() -> None:
    events = _stream(("u1", "a"), ("u2", "b"))
    m = evaluate(Fixed([]), events, k=K).metrics
    assert m[f"hit@{K}"] == 0.0 and m[f"ndcg@{K}"] == 0.0 and m["mrr"] == 0.0
    assert m[f"new_item_hit@{K}"] == 0.0 and m["warm_events"] == 0.0
    assert evaluate(Fixed([]), [], k=K).metrics["cold_events"] == 0.0


# -- exclusions and order ---------------------------------------------------------------------------


def test_exclude_is_exactly_the_users_earlier_items_and_learn_follows_recommend() -> None:
    events = [
        _ev("u1", "a", 1),
        _ev("u2", "b", 2),
        _ev("u1", "b", 3, EventType.DISLIKE),
        _ev("u1", None, 4, EventType.SEARCH),
        _ev("u2", "c", 5, EventType.PURCHASE),
        _ev("u1", "c", 6, EventType.BROWSE),
        _ev("u1", "a", 7),
    ]
    rec = Recorder()
    evaluate(rec, events, k=K)
    expected: list[tuple[str, str, frozenset[str]]] = []
    for n, e in enumerate(events):
        earlier = frozenset(x.item_id for x in events[:n] if x.user_id == e.user_id and x.item_id is not None)
        if e.item_id is not None:
            expected.append(("recommend", e.user_id, earlier))
            expected.append(("learn", e.event_id, earlier | {e.item_id}))
        else:
            expected.append(("learn", e.event_id, earlier))
    assert rec.calls == expected


def test_an_oracle_that_respects_exclusions_hits_every_fresh_item() -> None:
    m = evaluate(Oracle(TWO_USERS, respect_exclude=True), TWO_USERS, k=K).metrics
    assert m[f"hit@{K}"] == 1.0
    # A repeat is in the exclusions, so the same oracle cannot hit it.
    events = _stream(("u1", "a"), ("u1", "b"), ("u1", "a"), ("u1", "c"))
    report = evaluate(Oracle(events, respect_exclude=True), events, k=K)
    assert report.ranks.tolist() == [1, 0, 1]


def test_learning_happens_after_the_list_is_judged() -> None:
    events = _stream(("u1", "a"), ("u1", "b"), ("u1", "c"), ("u2", "d"), ("u2", "e"))
    m = evaluate(LastLearned(), events, k=K).metrics
    assert m[f"hit@{K}"] == 0.0 and m[f"cold_user_hit@{K}"] == 0.0


# -- rank metrics ---------------------------------------------------------------------------------


@pytest.mark.parametrize("rank", [1, 2, 3, K])
def test_rank_metrics_for_a_target_always_at_rank_r(rank: int) -> None:
    report = evaluate(Oracle(TWO_USERS, rank=rank), TWO_USERS, k=K)
    m = report.metrics
    assert m[f"hit@{K}"] == 1.0
    assert m[f"ndcg@{K}"] == pytest.approx(1.0 / math.log2(rank + 1))
    assert m["mrr"] == pytest.approx(1.0 / rank)
    assert report.ranks.tolist() == [rank] * 3
    assert report.name == "oracle" and report.k == K


def test_a_target_outside_the_list_is_a_miss() -> None:
    report = evaluate(Oracle(TWO_USERS, rank=K + 1), TWO_USERS, k=K)
    m = report.metrics
    assert m[f"hit@{K}"] == 0.0 and m[f"ndcg@{K}"] == 0.0 and m["mrr"] == 0.0
    assert report.ranks.tolist() == [0, 0, 0]


def test_a_target_beyond_k_in_a_longer_list_is_a_miss() -> None:
    report = evaluate(Oracle(TWO_USERS, rank=K + 2, length=2 * K), TWO_USERS, k=K)
    assert report.metrics[f"hit@{K}"] == 0.0
    assert report.ranks.tolist() == [0, 0, 0]


def test_mixed_ranks_average_over_all_warm_events() -> None:
    # Warm events (in order): x2 at rank 2, x3 at rank 2, y2 missed, x4 missed.
    events = _stream(("u1", "x1"), ("u2", "y1"), ("u1", "x2"), ("u1", "x3"), ("u2", "y2"), ("u1", "x4"))
    hit_on = {"x2", "x3"}
    model = Oracle(events, rank=2, hit_if=lambda target, exclude: target in hit_on)
    report = evaluate(model, events, k=K)
    m = report.metrics
    assert report.ranks.tolist() == [2, 2, 0, 0]
    assert m[f"hit@{K}"] == pytest.approx(0.5)
    assert m[f"ndcg@{K}"] == pytest.approx(0.5 / math.log2(3))
    assert m["mrr"] == pytest.approx(0.25)


# -- slices ---------------------------------------------------------------------------------------


def test_new_item_hit_only_counts_items_nobody_had_interacted_with() -> None:
    # u1 a (cold), u2 c (cold), u1 b (warm, new), u2 a (warm, not new: u1 had it), u2 d (warm, new)
    events = _stream(("u1", "a"), ("u2", "c"), ("u1", "b"), ("u2", "a"), ("u2", "d"))
    model = Oracle(events, hit_if=lambda target, exclude: target in {"b", "a"})
    m = evaluate(model, events, k=K).metrics
    assert m["new_item_events"] == 2.0
    assert m[f"new_item_hit@{K}"] == pytest.approx(0.5)  # b hit, d missed; a is not new
    assert m[f"hit@{K}"] == pytest.approx(2 / 3)


def test_a_disliked_item_is_no_longer_new() -> None:
    events = [_ev("u1", "a", 1, EventType.DISLIKE), _ev("u2", "z", 2), _ev("u2", "a", 3)]
    m = evaluate(Fixed([]), events, k=K).metrics
    assert m["warm_events"] == 1.0 and m["new_item_events"] == 0.0


def test_coverage_is_distinct_recommended_items_over_catalog_size() -> None:
    events = _stream(("u1", "a"), ("u1", "b"), ("u1", "c"), ("u2", "d"), ("u2", "e"))

    class Rotating:
        name = "rotating"

        def __init__(self) -> None:
            self.n = 0

        def recommend(self, user_id: str, k: int, exclude: set[str]) -> list[str]:
            self.n += 1
            return ["p", "q"] if self.n % 2 else ["q", "r"]

        def learn(self, event: Event, seen: set[str]) -> None:
            pass

    report = evaluate(Rotating(), events, k=K, catalog_size=12)
    assert report.metrics["coverage"] == pytest.approx(3 / 12)  # p, q, r
    assert math.isnan(evaluate(Rotating(), events, k=K).metrics["coverage"])


def test_diversity_is_one_minus_similarity_sampled_every_n_warm_lists() -> None:
    events = _stream(*[("u1", f"i{n}") for n in range(8)])  # 7 warm events
    seen_lists: list[list[str]] = []

    def similarity(top: list[str]) -> float | None:
        seen_lists.append(list(top))
        return 0.25 if len(seen_lists) == 1 else None  # None: not computable, skipped

    m = evaluate(Fixed(["p", "q", "r"]), events, k=K, similarity=similarity, diversity_every=3).metrics
    assert seen_lists == [["p", "q", "r"]] * 2  # warm events 3 and 6
    assert m["intra_list_diversity"] == pytest.approx(0.75)
    # Lists of one item have no pairs to compare.
    calls: list[list[str]] = []
    evaluate(Fixed(["p"]), events, k=K, similarity=lambda t: calls.append(t) or 0.0, diversity_every=1)
    assert calls == []


def test_timing_and_progress_hook() -> None:
    wrapped: list[int] = []

    def progress(it):  # type: ignore[no-untyped-def]
        for e in it:
            wrapped.append(e.ts)
            yield e

    m = evaluate(Fixed([]), TWO_USERS, k=K, progress=progress).metrics
    assert wrapped == [e.ts for e in TWO_USERS]
    assert m["ms_per_event"] >= 0.0 and math.isfinite(m["ms_per_event"])


# -- report ---------------------------------------------------------------------------------------


def test_window_hit_rate_slides_over_warm_events() -> None:
    report = Report("m", K, {}, np.array([1, 0, 2, 0, 0, 3], dtype=np.int32))
    np.testing.assert_allclose(report.window_hit_rate(2), [0.5, 0.5, 0.5, 0.0, 0.5])
    np.testing.assert_allclose(report.window_hit_rate(3), [2 / 3, 1 / 3, 1 / 3, 1 / 3])
    np.testing.assert_allclose(report.window_hit_rate(6), [0.5])
    np.testing.assert_allclose(report.window_hit_rate(1), [1, 0, 1, 0, 0, 1])
    # A window longer than the run: one value, the overall rate.
    np.testing.assert_allclose(report.window_hit_rate(100), [0.5])
    assert Report("m", K, {}, np.array([], dtype=np.int32)).window_hit_rate(3).size == 0


def test_window_hit_rate_from_a_run() -> None:
    events = _stream(("u1", "a"), ("u1", "b"), ("u1", "c"), ("u1", "d"), ("u1", "e"))
    model = Oracle(events, hit_if=lambda target, exclude: target in {"b", "c"})
    report = evaluate(model, events, k=K)
    np.testing.assert_allclose(report.window_hit_rate(2), [1.0, 0.5, 0.0])


def test_summary_is_json_safe_with_none_for_missing_metrics() -> None:
    report = evaluate(Oracle(TWO_USERS, rank=3), TWO_USERS, k=K)
    s = summary(report)
    assert s["coverage"] is None and s["intra_list_diversity"] is None
    assert s[f"hit@{K}"] == 1.0 and s["mrr"] == round(1 / 3, 6)
    json.dumps(s, allow_nan=False)
    odd = Report("m", K, {"a": math.nan, "b": math.inf, "c": -math.inf, "d": 0.1234567891}, np.array([]))
    assert summary(odd) == {"a": None, "b": None, "c": None, "d": 0.123457}


# -- ties -----------------------------------------------------------------------------------------


def test_tied_seconds_are_one_users_events_sharing_a_timestamp() -> None:
    events = [_ev("u1", "a", 1_000), _ev("u1", "b", 1_000), _ev("u2", "c", 1_000), _ev("u1", "d", 2_000),
              _ev("u2", None, 2_000, EventType.SEARCH), _ev("u2", "e", 2_000)]
    assert tied_seconds(events) == {("u1", 1_000)}, "other users, other seconds and searches make no tie"


def test_untied_hit_counts_only_warm_events_outside_tied_seconds() -> None:
    # u1: x1 (cold), x2 and x3 in one second (tied), x4 alone. The oracle hits x2, x3, x4 ... except
    # it misses x4, so the untied hit rate is 0 while the overall rate is 2/3.
    events = [_ev("u1", "x1", 1_000), _ev("u1", "x2", 2_000), _ev("u1", "x3", 2_000), _ev("u1", "x4", 3_000)]
    report = evaluate(Oracle(events, hit_if=lambda target, exclude: target != "x4"), events, K)
    assert report.metrics[f"hit@{K}"] == pytest.approx(2 / 3)
    assert report.metrics[f"untied_hit@{K}"] == 0.0
    assert report.metrics["tied_events"] == 2.0


# -- scoring only the later part ------------------------------------------------------------------


def test_events_before_score_from_are_learnt_but_not_judged_and_still_count_as_seen() -> None:
    """`--score-from`: a model fitted on the first part is judged on the rest only. The early events
    still make their users warm, their items interacted (not new) and excluded for those users."""
    events = _stream(("u1", "a"), ("u2", "b"), ("u1", "b"), ("u3", "a"), ("u1", "c"), ("u2", "d"))
    rec = Recorder()
    report = evaluate(rec, events, k=K, score_from=3)
    assert [c for c in rec.calls if c[0] == "recommend"] == [
        ("recommend", "u3", frozenset()), ("recommend", "u1", frozenset({"a", "b"})),
        ("recommend", "u2", frozenset({"b"}))]
    assert [c[1] for c in rec.calls if c[0] == "learn"] == [e.event_id for e in events]
    m = report.metrics
    # u3 is cold; u1 and u2 are warm through events that were never judged
    assert m["cold_events"] == 1 and m["warm_events"] == 2
    # "a" was interacted with before the cut, so only c and d are new items
    oracle = evaluate(Oracle(events), events, k=K, score_from=3)
    assert oracle.metrics["new_item_events"] == 2 and oracle.ranks.tolist() == [1, 1]
