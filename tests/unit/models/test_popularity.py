"""Recent popularity (models.popularity): an exact sliding window of the last N interactions."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.popularity import RecentPopularity


def test_window_must_be_positive() -> None:
    with pytest.raises(ValueError):
        RecentPopularity(0)
    with pytest.raises(ValueError):
        RecentPopularity(-3)


def test_top_orders_by_count() -> None:
    p = RecentPopularity(100)
    for item in ["a", "b", "b", "c", "c", "c"]:
        p.observe(item)
    assert p.top(3) == [("c", 3), ("b", 2), ("a", 1)]
    assert p.top(2) == [("c", 3), ("b", 2)]
    assert p.top(10) == [("c", 3), ("b", 2), ("a", 1)]
    assert p.top(0) == [] and p.top(-1) == []
    assert len(p) == 3


def test_window_eviction_is_exact() -> None:
    p = RecentPopularity(3)
    for item in ["a", "a", "b"]:
        p.observe(item)
    assert dict(p.top(10)) == {"a": 2, "b": 1}
    p.observe("c")  # evicts the first "a"
    assert dict(p.top(10)) == {"a": 1, "b": 1, "c": 1}
    p.observe("c")  # evicts the second "a": it disappears entirely
    assert dict(p.top(10)) == {"b": 1, "c": 2}
    assert len(p) == 2
    p.observe("d")
    p.observe("d")  # window is now c, d, d
    assert dict(p.top(10)) == {"c": 1, "d": 2}


@settings(max_examples=100, deadline=None)
@given(window=st.integers(min_value=1, max_value=8), stream=st.lists(st.sampled_from("abcdef"), max_size=60))
def test_counts_equal_the_last_window_events(window: int, stream: list[str]) -> None:
    p = RecentPopularity(window)
    for item in stream:
        p.observe(item)
    expected = Counter(stream[-window:]) if stream else Counter()
    got = p.top(100)
    assert dict(got) == dict(expected)
    assert [c for _, c in got] == sorted((c for _, c in got), reverse=True)
    assert len(p) == len(expected)


def test_top_excludes_and_still_fills_n() -> None:
    p = RecentPopularity(100)
    for item in ["a"] * 5 + ["b"] * 4 + ["c"] * 3 + ["d"] * 2:
        p.observe(item)
    assert p.top(2, exclude={"a"}) == [("b", 4), ("c", 3)]
    assert p.top(2, exclude=["a", "c"]) == [("b", 4), ("d", 2)]
    assert p.top(5, exclude={"a", "b", "c", "d"}) == []


def test_forget_removes_at_once() -> None:
    p = RecentPopularity(100)
    for item in ["a", "a", "a", "b"]:
        p.observe(item)
    p.forget("a")
    assert p.top(5) == [("b", 1)]
    assert len(p) == 1
    p.forget("never-seen")  # no error
    assert p.top(5) == [("b", 1)]


def test_forgotten_item_does_not_come_back_when_its_old_entries_age_out() -> None:
    p = RecentPopularity(2)
    p.observe("a")
    p.forget("a")
    p.observe("b")
    p.observe("c")  # evicts the stale "a"
    assert all(item != "a" for item, _ in p.top(10))
    assert all(count > 0 for _, count in p.top(10))
    assert len(p) == 2


def test_revived_item_is_counted_from_its_new_observations() -> None:
    p = RecentPopularity(3)
    p.observe("a")
    p.observe("a")
    p.forget("a")  # deleted
    p.observe("a")  # revived and seen again: window a, a, a; only the last one counts
    p.observe("b")  # evicts a stale "a"
    # Window is now a(stale), a(new), b: the new observation of "a" is still inside it.
    assert dict(p.top(10)) == {"a": 1, "b": 1}
