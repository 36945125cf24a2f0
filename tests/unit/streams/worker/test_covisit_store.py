"""The co-visitation store's RocksDB copy and topic codec (streams.worker.covisit_service): a restart resumes exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.covisitation import CoVisit, CoVisitation
from models.params import CoreParams
from streams.worker.covisit_service import CoVisitStore, decode_visits, encode_visits

PARAMS = CoreParams()
VISITS = [
    CoVisit("a", 1_000),
    CoVisit("b", 2_000, (("a", 1.0),)),
    CoVisit("c", 3_000, (("b", 1.0), ("a", 0.5))),
    CoVisit("a", 90 * 86_400_000, (("c", 1.0),)),
]


def test_visits_survive_the_topic_codec() -> None:
    assert decode_visits(encode_visits(3, [10, 11, 15, 20], VISITS)) == (3, [10, 11, 15, 20], VISITS)


def test_a_visit_republished_after_a_crash_is_applied_once(tmp_path: Path) -> None:
    """The worker crashed after publishing offsets 10-11 and before committing: it re-publishes 10-12."""
    once = CoVisitation(PARAMS)
    for visit in VISITS[:3]:
        once.apply(visit)
    replayed = CoVisitation(PARAMS)
    applied = [replayed.apply_once(v, 0, o) for v, o in zip(VISITS[:2], [10, 11])]
    applied += [replayed.apply_once(v, 0, o) for v, o in zip(VISITS[:3], [10, 11, 12])]
    assert applied == [True, True, False, False, True]
    assert all(replayed.record(i) == once.record(i) for i in "abc")
    # Sources are independent: offset 5 of partition 1 is new although partition 0 is at 12.
    assert replayed.apply_once(VISITS[3], 1, 5) and replayed.applied_upto == {0: 12, 1: 5}
    # The marks are saved with the store, so a restarted worker still recognises old visits.
    store = CoVisitStore(tmp_path / "covisits")
    store.save(replayed, "topic", {0: 3})
    restored = CoVisitation(PARAMS)
    store.load(restored, "topic")
    assert restored.applied_upto == {0: 12, 1: 5}
    assert not restored.apply_once(VISITS[2], 0, 12)
    store.close()


def test_saved_store_reloads_identically_with_its_offsets(tmp_path: Path) -> None:
    live = CoVisitation(PARAMS)
    store = CoVisitStore(tmp_path / "covisits")
    for visit in VISITS[:2]:
        live.apply(visit)
    store.save(live, "topic", {0: 2})
    for visit in VISITS[2:]:  # only the dirty items are written the second time
        live.apply(visit)
    store.save(live, "topic", {0: 4, 1: 7})
    store.close()

    reopened = CoVisitStore(tmp_path / "covisits")
    restored = CoVisitation(PARAMS)
    assert reopened.load(restored, "topic") == {0: 4, 1: 7}
    assert restored.t0_s == live.t0_s
    for item in "abc":
        assert restored.record(item) == live.record(item)
    anchors = [("a", 1.0), ("c", 0.8)]
    by_name = lambda cv, s: {cv.name(i): v for i, v in enumerate(s) if v}  # noqa: E731
    assert by_name(restored, restored.scores(anchors)) == by_name(live, live.scores(anchors))
    assert [restored.name(int(i)) for i in restored.popular_ids()] == [live.name(int(i)) for i in live.popular_ids()]
    reopened.close()


def test_a_store_of_another_topic_is_not_loaded(tmp_path: Path) -> None:
    live = CoVisitation(PARAMS)
    live.apply(VISITS[0])
    store = CoVisitStore(tmp_path / "covisits")
    store.save(live, "old-topic", {0: 1})
    fresh = CoVisitation(PARAMS)
    assert store.load(fresh, "new-topic") == {} and len(fresh) == 0
    assert np.all(fresh.counts == 0)
    store.close()
