"""The exactly-once check counts per event id: a lost and a doubled event of one user never cancel."""

from __future__ import annotations

from models.interest import digest_of
from streams.lab.reliability.checks import lost_and_twice


def _row(ids: list[str]) -> dict[str, object]:
    return {"events_applied": len(ids), "applied_digest": format(digest_of(ids), "x")}


def test_exact_application_counts_nothing() -> None:
    sent = {"u": ["a", "b", "c"], "v": ["d"]}
    assert lost_and_twice(sent, {"u": _row(["a", "b", "c"]), "v": _row(["d"])}) == (0, 0)


def test_a_lost_and_a_doubled_event_of_one_user_are_both_counted() -> None:
    sent = {"u": ["a", "b", "c"]}
    assert lost_and_twice(sent, {"u": _row(["a", "a", "c"])}) == (1, 1)


def test_missing_users_and_extra_events_are_counted() -> None:
    sent = {"u": ["a", "b"], "gone": ["x", "y"]}
    assert lost_and_twice(sent, {"u": _row(["a", "b", "b"])}) == (2, 1)
