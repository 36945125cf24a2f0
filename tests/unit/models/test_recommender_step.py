"""Recommender.step (models.pipeline): one batch in, coalesced states and one list per touched user out."""

from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np
import pytest

from models.index import ItemIndex
from models.interest import UserState, apply_event
from models.params import CoreParams
from models.pipeline import Positioned, Recommender, is_redelivery
from models.covisitation import CoVisitation
from models.ranking import POPULAR_REASON
from models.variants import Experiment
from schemas.records import Event, EventType

DIM = 8


class HashEncoder:
    """Deterministic stand-in for the sentence encoder: the same text always gives the same unit vector."""

    name = "hash-test"

    def __init__(self, dim: int = DIM) -> None:
        self.dim = dim
        self.calls: list[list[str]] = []

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")
            v = np.random.default_rng(seed).normal(size=self.dim)
            out[row] = v / np.linalg.norm(v)
        return out


def _vecs(n: int = 12, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


VECS = _vecs()


def _recommender(top_k: int = 4) -> tuple[Recommender, HashEncoder]:
    idx = ItemIndex(DIM, capacity=4)
    for n, v in enumerate(VECS):
        idx.upsert(f"i{n}", f"Title {n}", [], f"h{n}", v)
    enc = HashEncoder()
    return Recommender(idx, enc, CoreParams(top_k=top_k)), enc


def _ev(eid: str, user: str, kind: EventType, item: str | None = None, ts: int = 1, query: str | None = None) -> Event:
    if kind is EventType.SEARCH:
        return Event(event_id=eid, user_id=user, type=kind, query=query, ts=ts)
    return Event(event_id=eid, user_id=user, type=kind, item_id=item, ts=ts)


def test_coalesces_events_of_one_user() -> None:
    rec, _ = _recommender()
    u_events = [
        _ev("e1", "u", EventType.CLICK, "i0", ts=10),
        _ev("e3", "u", EventType.PURCHASE, "i1", ts=20),
        _ev("e4", "u", EventType.BROWSE, "i2", ts=30),
    ]
    v_event = _ev("e2", "v", EventType.CLICK, "i5", ts=15)
    batch = [Positioned(u_events[0], 100), Positioned(v_event, 101), Positioned(u_events[1], 102), Positioned(u_events[2], 103)]
    out = rec.step({}, batch)

    assert set(out.states) == {"u", "v"}
    assert set(out.recommendations) == {"u", "v"}
    assert out.triggers == {"u": u_events[2], "v": v_event}
    assert out.applied == [u_events[0], v_event, u_events[1], u_events[2]]
    assert out.duplicates == [] and out.unknown_items == 0

    # The coalesced state is exactly the events folded one by one.
    expected = UserState.empty(DIM)
    for ev, off, n in zip(u_events, (100, 102, 103), (0, 1, 2)):
        expected = apply_event(expected, ev, rec.params, item_vec=VECS[n], offset=off)
    u = out.states["u"]
    np.testing.assert_allclose(u.long, expected.long, rtol=1e-6)
    np.testing.assert_allclose(u.short, expected.short, rtol=1e-6)
    assert (u.events_applied, u.last_event_id, u.last_offset, u.last_ts) == (3, "e4", 103, 30)
    assert u.excluded == ("i1",)
    assert out.states["v"].events_applied == 1

    recs = out.recommendations["u"]
    assert len(recs) == rec.params.top_k
    assert "i1" not in {r.item_id for r in recs}
    assert all(r.reason.startswith("because you ") for r in recs)


def test_existing_states_are_continued_not_restarted() -> None:
    rec, _ = _recommender()
    first = rec.step({}, [Positioned(_ev("e1", "u", EventType.PURCHASE, "i0"), 5)])
    second = rec.step(dict(first.states), [Positioned(_ev("e2", "u", EventType.CLICK, "i3"), 6)])
    u = second.states["u"]
    assert u.events_applied == 2
    assert u.excluded == ("i0",)
    assert u.recent == (("i0", "purchase"), ("i3", "click"))
    assert "i0" not in {r.item_id for r in second.recommendations["u"]}


def test_redeliveries_are_skipped_and_counted() -> None:
    rec, _ = _recommender()
    first = rec.step({}, [Positioned(_ev("e1", "u", EventType.CLICK, "i0"), 10), Positioned(_ev("e2", "u", EventType.CLICK, "i1"), 11)])
    state = first.states["u"]
    same_offset = Positioned(_ev("e2", "u", EventType.CLICK, "i1"), 11)
    lower_offset = Positioned(_ev("e1", "u", EventType.CLICK, "i0"), 10)
    same_id_no_offset = Positioned(_ev("e2", "u", EventType.CLICK, "i1"), -1)
    fresh = Positioned(_ev("e3", "u", EventType.PURCHASE, "i4"), 12)
    again = Positioned(_ev("e3", "u", EventType.PURCHASE, "i4"), 12)  # redelivered within the same batch

    out = rec.step({"u": state}, [same_offset, lower_offset, same_id_no_offset, fresh, again])
    assert out.duplicates == [same_offset.event, lower_offset.event, same_id_no_offset.event, again.event]
    assert out.applied == [fresh.event]
    u = out.states["u"]
    assert u.events_applied == 3 and u.last_offset == 12 and u.last_event_id == "e3"
    assert out.triggers == {"u": fresh.event}


def test_user_with_only_redeliveries_gets_no_new_list() -> None:
    rec, _ = _recommender()
    first = rec.step({}, [Positioned(_ev("e1", "u", EventType.CLICK, "i0"), 10)])
    out = rec.step(dict(first.states), [Positioned(_ev("e1", "u", EventType.CLICK, "i0"), 10)])
    assert out.states == {} and out.recommendations == {} and out.triggers == {}
    assert len(out.duplicates) == 1 and out.applied == []


def test_is_redelivery() -> None:
    fresh = UserState.empty(DIM)
    ev = _ev("e1", "u", EventType.CLICK, "i0")
    assert not is_redelivery(fresh, Positioned(ev, 0))
    assert not is_redelivery(fresh, Positioned(ev, -1))
    seen = apply_event(fresh, ev, CoreParams(), item_vec=VECS[0], offset=7)
    assert is_redelivery(seen, Positioned(ev, 7))
    assert is_redelivery(seen, Positioned(_ev("other", "u", EventType.CLICK, "i0"), 3))
    assert is_redelivery(seen, Positioned(ev, -1))
    assert is_redelivery(seen, Positioned(ev, 8))  # same event id, even at a new offset
    assert not is_redelivery(seen, Positioned(_ev("e2", "u", EventType.CLICK, "i0"), 8))
    assert not is_redelivery(seen, Positioned(_ev("e2", "u", EventType.CLICK, "i0"), -1))


def test_unknown_items_are_counted_not_fatal() -> None:
    rec, _ = _recommender()
    batch = [
        Positioned(_ev("e1", "u", EventType.PURCHASE, "ghost-1"), 1),
        Positioned(_ev("e2", "u", EventType.CLICK, "ghost-2"), 2),
        Positioned(_ev("e3", "w", EventType.CLICK, "i2"), 3),
    ]
    out = rec.step({}, batch)
    assert out.unknown_items == 2
    assert len(out.applied) == 3
    u = out.states["u"]
    assert u.events_applied == 2 and u.excluded == ("ghost-1",)
    assert not u.long.any() and not u.short.any()
    for visit in out.visits:
        rec.covis.apply(visit)
    # No taste yet: the list comes from popularity (what w clicked), never the ghosts.
    again = rec.step(out.states, [Positioned(_ev("e4", "u", EventType.BROWSE, "ghost-3"), 4)])
    assert [(r.item_id, r.reason) for r in again.recommendations["u"]] == [("i2", POPULAR_REASON)]


def test_visits_come_from_item_events_but_not_dislikes_or_searches() -> None:
    rec, _ = _recommender()
    batch = [
        Positioned(_ev("e1", "a", EventType.CLICK, "i0"), 1),
        Positioned(_ev("e2", "a", EventType.PURCHASE, "i1", ts=2), 2),
        Positioned(_ev("e3", "c", EventType.BROWSE, "i1"), 3),
        Positioned(_ev("e4", "d", EventType.DISLIKE, "i2"), 4),
        Positioned(_ev("e5", "e", EventType.CLICK, "ghost"), 5),
        Positioned(_ev("e6", "f", EventType.SEARCH, query="robots"), 6),
    ]
    out = rec.step({}, batch)
    # "ghost" is in no catalog: its event counts for its user, but teaches co-visitation nothing.
    assert [(v.item_id, v.before) for v in out.visits] == [
        ("i0", ()), ("i1", (("i0", 1.0),)), ("i1", ()),
    ]


def test_step_only_reads_the_shared_covisitation() -> None:
    """Workers apply co-visits from the topic; a step that applied them too would count them twice."""
    idx = ItemIndex(DIM, capacity=4)
    idx.upsert("i0", "T", [], "h", VECS[0])
    store = CoVisitation(CoreParams())
    rec = Recommender(idx, HashEncoder(), CoreParams(), covis=store)
    out = rec.step({}, [Positioned(_ev("e1", "a", EventType.CLICK, "i0"), 1)])
    assert rec.covis is store
    assert store.applied == 0 and len(out.visits) == 1


def test_search_events_are_encoded_once_per_batch() -> None:
    rec, enc = _recommender()
    batch = [
        Positioned(_ev("s1", "u", EventType.SEARCH, query="space horror"), 1),
        Positioned(_ev("c1", "v", EventType.CLICK, "i0"), 2),
        Positioned(_ev("s2", "v", EventType.SEARCH, query="romantic comedy"), 3),
    ]
    out = rec.step({}, batch)
    assert enc.calls == [["space horror", "romantic comedy"]]
    u = out.states["u"]
    assert u.last_query == "space horror"
    np.testing.assert_allclose(u.query_vec, enc.encode(["space horror"])[0], rtol=2e-3, atol=2e-4)
    assert not u.long.any()  # search steers the session only
    assert all(r.reason == "matches your search 'space horror'" for r in out.recommendations["u"])
    assert out.states["v"].last_query == "romantic comedy"


def test_no_search_no_encoder_call_and_empty_batch() -> None:
    rec, enc = _recommender()
    rec.step({}, [Positioned(_ev("c1", "v", EventType.CLICK, "i0"), 2)])
    out = rec.step({}, [])
    assert enc.calls == []
    assert out.states == {} and out.recommendations == {} and out.applied == [] and out.duplicates == []


def test_states_passed_in_are_not_mutated() -> None:
    rec, _ = _recommender()
    first = rec.step({}, [Positioned(_ev("e1", "u", EventType.CLICK, "i0", ts=1), 1), Positioned(_ev("s", "u", EventType.SEARCH, query="x", ts=2), 2)])
    before = first.states["u"]
    snapshot = (before.long.copy(), before.short.copy(), before.query_vec.copy())  # type: ignore[union-attr]
    fields = (before.events_applied, before.last_event_id, before.last_offset, before.recent, before.excluded, before.last_query)
    states = {"u": before}
    out = rec.step(
        states,
        [
            Positioned(_ev("e2", "u", EventType.PURCHASE, "i3", ts=10**9), 3),
            Positioned(_ev("s2", "u", EventType.SEARCH, query="y", ts=10**9), 4),
        ],
    )
    assert states == {"u": before} and states["u"] is before
    np.testing.assert_array_equal(before.long, snapshot[0])
    np.testing.assert_array_equal(before.short, snapshot[1])
    np.testing.assert_array_equal(before.query_vec, snapshot[2])
    assert (before.events_applied, before.last_event_id, before.last_offset, before.recent, before.excluded, before.last_query) == fields
    assert out.states["u"] is not before and out.states["u"].events_applied == 4


def test_none_state_is_a_new_user() -> None:
    rec, _ = _recommender()
    out = rec.step({"u": None}, [Positioned(_ev("e1", "u", EventType.CLICK, "i0"), 0)])
    assert out.states["u"].events_applied == 1


def test_step_survives_deleted_history_item() -> None:
    rec, _ = _recommender()
    first = rec.step({}, [Positioned(_ev("e1", "u", EventType.CLICK, "i0"), 1)])
    rec.index.delete("i0")
    out = rec.step(dict(first.states), [Positioned(_ev("e2", "u", EventType.CLICK, "i1"), 2)])
    assert "i0" not in {r.item_id for r in out.recommendations["u"]}


# -- erase ------------------------------------------------------------------------------------


def _erase(eid: str, user: str) -> Event:
    return Event(event_id=eid, user_id=user, type=EventType.ERASE, ts=1)


def test_an_erase_deletes_the_user_and_publishes_no_list() -> None:
    rec, _ = _recommender()
    first = rec.step({}, [Positioned(_ev("e1", "u", EventType.CLICK, "i0"), 1), Positioned(_ev("e2", "v", EventType.CLICK, "i1"), 2)])
    out = rec.step(first.states, [Positioned(_ev("e3", "u", EventType.PURCHASE, "i2", ts=3), 3), Positioned(_erase("x", "u"), 4)])
    assert out.erased == {"u"}
    assert "u" not in out.states and "u" not in out.recommendations and "u" not in out.triggers
    # The purchase before the erase still counts as a co-visit: the pair names items, not the user.
    assert [v.item_id for v in out.visits] == ["i2"]
    assert [e.event_id for e in out.applied] == ["e3", "x"]


def test_events_after_an_erase_in_the_same_batch_start_a_new_user() -> None:
    rec, _ = _recommender()
    old = rec.step({}, [Positioned(_ev(f"e{n}", "u", EventType.PURCHASE, f"i{n}", ts=n), n) for n in range(1, 4)])
    out = rec.step(old.states, [Positioned(_erase("x", "u"), 10), Positioned(_ev("e11", "u", EventType.CLICK, "i5", ts=11), 11)])
    assert out.erased == set()
    state = out.states["u"]
    assert state.events_applied == 1 and state.last_event_id == "e11"
    assert state.excluded == () and [i for i, _ in state.recent] == ["i5"]
    # Nothing of the old history survives: no co-visit pairs the new click with erased items.
    assert [(v.item_id, v.before) for v in out.visits] == [("i5", ())]
    assert out.triggers["u"].event_id == "e11" and "u" in out.recommendations


def test_erasing_an_unknown_user_is_harmless_and_repeatable() -> None:
    rec, _ = _recommender()
    out = rec.step({}, [Positioned(_erase("x", "nobody"), 1), Positioned(_erase("y", "nobody"), 2)])
    assert out.erased == {"nobody"} and out.states == {} and out.recommendations == {}


def test_apply_event_refuses_an_erase() -> None:
    with pytest.raises(ValueError, match="erase"):
        apply_event(UserState.empty(DIM), _erase("x", "u"), CoreParams())


def test_a_second_copy_of_a_re_keyed_event_is_a_duplicate_even_at_a_new_offset() -> None:
    """A crash between re-sending an event to its user's partition and committing its source makes
    the re-send happen twice: the copies have different offsets, the same origin."""
    rec, _ = _recommender()
    a = _ev("a", "u", EventType.CLICK, "i0", ts=10)
    b = _ev("b", "u", EventType.CLICK, "i1", ts=20)
    first = [Positioned(a, 100, origin=(2, 7)), Positioned(b, 101, origin=(2, 8))]
    again = [Positioned(a, 102, origin=(2, 7)), Positioned(b, 103, origin=(2, 8))]
    out = rec.step({}, first + again)
    assert [e.event_id for e in out.applied] == ["a", "b"]
    assert [e.event_id for e in out.duplicates] == ["a", "b"]
    state = out.states["u"]
    assert state.rekeyed == ((2, 8),)
    # Across batches too, and a later event from that source partition is applied.
    later = rec.step({"u": state}, [Positioned(a, 104, origin=(2, 7)), Positioned(_ev("c", "u", EventType.CLICK, "i2", ts=30), 105, origin=(2, 9))])
    assert [e.event_id for e in later.applied] == ["c"] and [e.event_id for e in later.duplicates] == ["a"]
    # An event that arrived on its own partition carries no origin and is never taken for a copy.
    plain = rec.step({"u": later.states["u"]}, [Positioned(_ev("d", "u", EventType.CLICK, "i3", ts=40), 106)])
    assert [e.event_id for e in plain.applied] == ["d"]


def test_the_applied_digest_names_the_events_applied() -> None:
    from models.interest import digest_of

    rec, _ = _recommender()
    events = [_ev(f"e{n}", "u", EventType.CLICK, f"i{n}", ts=n + 1) for n in range(5)]
    state = rec.step({}, [Positioned(e, n) for n, e in enumerate(events)]).states["u"]
    assert state.events_applied == 5
    assert state.applied_digest == digest_of(e.event_id for e in events)
    # One lost and one doubled event keep the count but not the digest.
    assert state.applied_digest != digest_of(["e0", "e1", "e2", "e3", "e3"])


# -- ids the catalog does not have (issue 15) ----------------------------------------------------------


def _run(rec: Recommender, events: list[Event]) -> dict[str, list]:  # type: ignore[type-arg]
    """Step each event as the worker does, applying the co-visits it returns; the last lists by user."""
    states: dict[str, UserState | None] = {}
    lists: dict[str, list] = {}  # type: ignore[type-arg]
    for offset, ev in enumerate(events):
        out = rec.step(states, [Positioned(ev, offset)])
        for visit in out.visits:
            rec.covis.apply(visit)
        states.update(out.states)
        lists.update(out.recommendations)
    return lists


def test_unknown_ids_neither_crowd_out_popular_items_nor_cost_memory() -> None:
    rec, _ = _recommender(top_k=4)
    catalog = {f"i{n}" for n in range(len(VECS))}
    # Two events on each catalog item, then more traffic on ids no catalog has: 360 events over 120 of
    # them (three each, so each outranks every catalog item), by 30 users.
    events = [_ev(f"k{n}", f"known{n % 10}", EventType.CLICK, f"i{n % len(VECS)}", ts=1_000 + n)
              for n in range(2 * len(VECS))]
    events += [_ev(f"x{n}", f"other{n % 30}", EventType.CLICK, f"ghost{n % 120}", ts=2_000 + n) for n in range(360)]
    # A new user whose first event is on an unknown item: no vector, so their list is popularity's.
    events.append(_ev("new", "newcomer", EventType.CLICK, "ghost-new", ts=3_000))

    lists = _run(rec, events)

    newcomer = lists["newcomer"]
    assert len(newcomer) == 4, "the popular catalog items are the newcomer's list"
    assert {s.item_id for s in newcomer} <= catalog
    assert all(s.reason == POPULAR_REASON for s in newcomer)
    assert len(rec.covis) <= len(catalog), "co-visitation keeps only catalog items"


def test_a_deleted_popular_item_stops_setting_the_popularity_scale() -> None:
    rec, _ = _recommender(top_k=3)
    events = [_ev(f"h{n}", f"fan{n}", EventType.CLICK, "i0", ts=1_000 + n) for n in range(50)]
    events += [_ev(f"o{n}", f"u{n}", EventType.CLICK, f"i{1 + n % 5}", ts=2_000 + n) for n in range(10)]
    _run(rec, events)
    rec.index.delete("i0")
    lists = _run(rec, [_ev("cold", "cold", EventType.CLICK, "gone", ts=3_000)])
    cold = lists["cold"]
    assert "i0" not in {s.item_id for s in cold}
    # The most popular item left sets the scale: its popularity term is the whole weight, not a fraction.
    assert cold[0].score == pytest.approx(rec.params.w_popularity, rel=1e-6)


# -- experiment variants and the online hit measure ---------------------------------------------------


def test_the_stored_state_remembers_the_list_it_was_shown() -> None:
    rec, _ = _recommender()
    out = rec.step({}, [Positioned(_ev("e1", "u", EventType.CLICK, "i0"), 1)])
    assert out.states["u"].shown == tuple(s.item_id for s in out.recommendations["u"]) and out.states["u"].shown
    assert out.online == [], "a user's first event has no list to be judged against"
    assert out.variants == {"u": "default"}


def test_each_judged_event_is_scored_against_the_list_shown_before_the_batch() -> None:
    rec, _ = _recommender(top_k=4)
    first = rec.step({}, [Positioned(_ev("e1", "u", EventType.CLICK, "i0"), 1)])
    shown = first.states["u"].shown
    missing = next(f"i{n}" for n in range(12) if f"i{n}" not in shown and f"i{n}" != "i0")
    batch = [Positioned(_ev("e2", "u", EventType.CLICK, shown[2]), 2),
             Positioned(_ev("e3", "u", EventType.DISLIKE, shown[0]), 3),  # not a success: not judged
             Positioned(_ev("e4", "u", EventType.PURCHASE, missing), 4),
             Positioned(_ev("e5", "u", EventType.SEARCH, query="space"), 5)]
    out = rec.step(first.states, batch)
    # Both judged events meet the list shown before the batch: coalesced lists were never published.
    assert out.online == [("default", 3), ("default", 0)]


def test_variants_rank_with_their_own_params_and_stamp_their_name() -> None:
    from models.variants import Experiment

    base = CoreParams(top_k=4)
    experiment = Experiment.from_spec({"salt": "s", "variants": [
        {"name": "default", "share": 0.5}, {"name": "long", "share": 0.5, "params": {"top_k": 7}}]}, base)
    idx = ItemIndex(DIM, capacity=4)
    for n, v in enumerate(VECS):
        idx.upsert(f"i{n}", f"Title {n}", [], f"h{n}", v)
    rec = Recommender(idx, HashEncoder(), base, experiment=experiment)
    users = [f"user-{n}" for n in range(40)]
    out = rec.step({}, [Positioned(_ev(f"e{n}", u, EventType.CLICK, "i1"), n) for n, u in enumerate(users)])
    for user in users:
        name = experiment.variant_of(user).name
        assert out.variants[user] == name
        assert len(out.recommendations[user]) == (7 if name == "long" else 4)
    assert {out.variants[u] for u in users} == {"default", "long"}


@pytest.mark.parametrize("history", [["i0"], ["i0", "i1", "i2"]])
def test_a_popularity_only_variant_lists_what_is_popular_with_that_reason(history: list[str]) -> None:
    """w_covis, w_content, w_fresh and w_content_led at 0: the blend is popularity alone, for users with
    co-visitation evidence and for content-led ones alike."""
    from models.covisitation import CoVisit

    popular_only = CoreParams(top_k=3, w_covis=0.0, w_content=0.0, w_fresh=0.0, w_content_led=0.0)
    idx = ItemIndex(DIM, capacity=4)
    for n, v in enumerate(VECS):
        idx.upsert(f"i{n}", f"Title {n}", [], f"h{n}", v)
    store = CoVisitation(popular_only)
    for item, times in (("i7", 9), ("i5", 7), ("i9", 5), ("i4", 3)):
        for t in range(times):
            store.apply(CoVisit(item, 1000 + t, ()))
    store.apply(CoVisit("i1", 2000, (("i0", 1.0),)))  # co-visitation evidence a hybrid would follow
    store.apply(CoVisit("i2", 2001, (("i1", 1.0),)))
    rec = Recommender(idx, HashEncoder(), popular_only, covis=store)
    batch = [Positioned(_ev(f"e{n}", "u", EventType.CLICK, item, ts=3000 + n), n) for n, item in enumerate(history)]
    listed = rec.step({}, batch).recommendations["u"]
    assert [s.item_id for s in listed] == ["i7", "i5", "i9"]
    assert {s.reason for s in listed} == {POPULAR_REASON}


def test_stored_candidates_come_after_the_shown_list_and_are_not_judged() -> None:
    idx = ItemIndex(DIM, capacity=4)
    for n, v in enumerate(VECS):
        idx.upsert(f"i{n}", f"Title {n}", [], f"h{n}", v)
    rec = Recommender(idx, HashEncoder(), CoreParams(top_k=3, stored_k=7))
    out = rec.step({}, [Positioned(_ev("e1", "u", EventType.CLICK, "i0"), 1)])
    listed = [s.item_id for s in out.recommendations["u"]]
    assert len(listed) == 7 and out.states["u"].shown == tuple(listed[:3])
    # The same ranking without stored candidates shows the same three.
    plain = Recommender(idx, HashEncoder(), CoreParams(top_k=3)).step({}, [Positioned(_ev("e1", "u", EventType.CLICK, "i0"), 1)])
    assert [s.item_id for s in plain.recommendations["u"]] == listed[:3]
    nxt = rec.step(out.states, [Positioned(_ev("e2", "u", EventType.CLICK, listed[5]), 2)])
    assert nxt.online == [("default", 0)], "a stored candidate was not shown: not a hit"


def _variant_experiment() -> Experiment:
    return Experiment.from_spec({"salt": "enc", "variants": [
        {"name": "default", "share": 0.5}, {"name": "tuned", "share": 0.5, "encoder": "/models/tuned"}]}, CoreParams())


def _index_of(vectors: np.ndarray) -> ItemIndex:
    idx = ItemIndex(DIM, capacity=4)
    for n, v in enumerate(vectors):
        idx.upsert(f"i{n}", f"Title {n}", [], f"h{n}", v)
    return idx


def test_a_variant_with_its_own_encoder_is_ranked_with_its_index_and_no_one_else_is() -> None:
    experiment = _variant_experiment()
    users = [f"user-{n}" for n in range(40)]
    plain = next(u for u in users if experiment.variant_of(u).name == "default")
    tuned = next(u for u in users if experiment.variant_of(u).name == "tuned")
    base_enc, tuned_enc = HashEncoder(), HashEncoder()
    tuned_enc.name = "tuned-test"
    rec = Recommender(_index_of(VECS), base_enc, CoreParams(), experiment=experiment)
    tuned_index = _index_of(_vecs(seed=1))
    rec.use_variant_content("tuned", tuned_index, tuned_enc)
    batch = [Positioned(_ev("c1", plain, EventType.CLICK, "i3"), 1), Positioned(_ev("c2", tuned, EventType.CLICK, "i3"), 2),
             Positioned(_ev("s1", plain, EventType.SEARCH, query="space horror"), 3),
             Positioned(_ev("s2", tuned, EventType.SEARCH, query="war drama"), 4)]
    out = rec.step({}, batch)
    assert out.encoders == {plain: "hash-test", tuned: "tuned-test"}
    assert base_enc.calls == [["space horror"]] and tuned_enc.calls == [["war drama"]]
    # Each user's lists and state are exactly what a recommender holding only their encoder's index makes.
    for user, vectors in ((plain, VECS), (tuned, _vecs(seed=1))):
        alone = Recommender(_index_of(vectors), HashEncoder(), CoreParams(), experiment=experiment)
        expected = alone.step({}, [p for p in batch if p.event.user_id == user])
        assert out.recommendations[user] == expected.recommendations[user]
        np.testing.assert_array_equal(out.states[user].long, expected.states[user].long)
    assert rec.content_of("default") == (rec.index, base_enc)
    with pytest.raises(ValueError, match="9-dimensional vectors"):
        rec.use_variant_content("tuned", ItemIndex(DIM + 1), HashEncoder(DIM + 1))
