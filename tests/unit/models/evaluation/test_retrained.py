"""The retrained baselines (models.evaluation.retrained): when they refit, what they learn, what they serve."""

from __future__ import annotations

import pytest

from models.evaluation.retrained import ALSConfig, FitSchedule, RetrainedALS, RetrainedSASRec, SASRecConfig
from schemas.records import Event, EventType

CATALOG = [f"i{n}" for n in range(40)]


def _ev(n: int, user: str, item: str) -> Event:
    return Event(event_id=f"e{n}", user_id=user, type=EventType.CLICK, item_id=item, ts=n * 1000)


def _learn_all(model: RetrainedALS | RetrainedSASRec, events: list[Event]) -> None:
    seen: dict[str, set[str]] = {}
    for e in events:
        history = seen.setdefault(e.user_id, set())
        history.add(e.item_id or "")
        model.learn(e, history)


def test_fit_points_are_every_fraction_of_the_stream() -> None:
    assert sorted(FitSchedule(100, 0.05).points) == list(range(5, 101, 5))
    assert sorted(FitSchedule(95, 0.10).points) == list(range(10, 91, 10))  # ceil(9.5) = 10
    with pytest.raises(ValueError, match="fraction"):
        FitSchedule(100, 0)


def _two_tastes(users: int = 30) -> list[Event]:
    """Half the users watch i0..i9, the other half i10..i19, interleaved in time."""
    events: list[Event] = []
    for step in range(8):
        for u in range(users):
            base = 0 if u % 2 == 0 else 10
            events.append(_ev(len(events), f"u{u}", f"i{base + (u + step) % 10}"))
    return events


def test_als_refits_only_at_its_points_and_serves_popularity_before_the_first() -> None:
    events = _two_tastes()
    model = RetrainedALS(CATALOG, len(events), ALSConfig(factors=8, iterations=10, every=0.25))
    first_fit = len(events) // 4
    _learn_all(model, events[: first_fit - 1])
    assert model.fits == 0
    top = model.recommend("u0", 5, set())
    assert top and set(top) <= {f"i{n}" for n in range(20)}, "recent popularity before any fit"
    _learn_all(model, events[first_fit - 1 : first_fit])
    assert model.fits == 1
    _learn_all(model, events[first_fit:])
    assert model.fits == 4


def test_als_learns_the_two_tastes_and_folds_in_a_new_user() -> None:
    events = _two_tastes()
    # Two factors: the two tastes are all the structure there is to learn.
    model = RetrainedALS(CATALOG, len(events), ALSConfig(factors=2, iterations=15, every=0.5))
    _learn_all(model, events)
    assert model.fits == 2
    # A user the last fit never saw: folded in from their items at request time.
    model.learn(_ev(10_000, "new", "i12"), {"i12"})
    model.learn(_ev(10_001, "new", "i15"), {"i12", "i15"})
    top = model.recommend("new", 5, {"i12", "i15"})
    assert len(top) == 5 and set(top) <= {f"i{n}" for n in range(10, 20)} - {"i12", "i15"}
    assert set(model.recommend("u0", 5, set())) <= {f"i{n}" for n in range(10)}


def test_sasrec_learns_direction_which_co_occurrence_cannot() -> None:
    """Every user walks the same cycle i0 -> i1 -> ... -> i9 -> i0, each starting elsewhere.

    Co-occurrence sees i3 next to both i2 and i4; only a sequence model knows i4 follows i3.
    """
    events: list[Event] = []
    for step in range(30):
        for u in range(20):
            events.append(_ev(len(events), f"u{u}", f"i{(u + step) % 10}"))
    config = SASRecConfig(max_len=8, dim=32, layers=1, epochs=30, batch=32, lr=5e-3, dropout=0.0, every=1.0)
    model = RetrainedSASRec(CATALOG, len(events), config)
    _learn_all(model, events)
    assert model.fits == 1
    assert model.losses[-1] < 0.5, model.losses
    for last in range(10):
        model.learn(_ev(100_000 + last, f"probe{last}", f"i{(last + 9) % 10}"), set())
        model.learn(_ev(200_000 + last, f"probe{last}", f"i{last}"), set())
        assert model.recommend(f"probe{last}", 1, set()) == [f"i{(last + 1) % 10}"]


def test_sasrec_windows_cover_every_event_and_keep_the_newest_whole() -> None:
    model = RetrainedSASRec(CATALOG, 1_000, SASRecConfig(max_len=4))
    model.users = {"a": list(range(10)), "b": [7]}
    windows = model._windows()
    assert windows.shape[1] == 5
    assert windows[0].tolist() == [6, 7, 8, 9, 10]  # rows + 1, the newest window first
    targets = {int(t) for w in windows for t in w[1:] if t}
    assert targets == set(range(2, 11)), "every item after a user's first is a target once"
