"""The co-visitation store's RocksDB copy and topic codec (streams.worker.covisit_service): a restart resumes exactly."""

from __future__ import annotations

import asyncio
import gc
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from models.covisitation import CoVisit, CoVisitation
from models.params import CoreParams
from streams.settings import Settings
from streams.worker.covisit_service import CoVisitService, CoVisitStore, decode_visits, encode_visits
from streams.worker.model_access import ModelAccess

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


def test_a_long_fetch_of_co_visits_is_applied_in_turns_in_the_models_thread(tmp_path: Path) -> None:
    """500 records of 100 visits each took ~0.2 s of the event loop in one go. Now they are applied in
    the models thread, in turns, so a batch's step waits at most a turn, and the loop never waits."""
    rng = np.random.default_rng(3)
    records = []
    for offset in range(500):
        visits = [CoVisit(f"i{rng.integers(300)}", 1_000 * (offset * 100 + k),
                          tuple((f"i{j}", 1.0 / (d + 1)) for d, j in enumerate(rng.integers(300, size=10))))
                  for k in range(100)]
        records.append(SimpleNamespace(value=encode_visits(0, list(range(offset * 100, offset * 100 + 100)), visits),
                                       offset=offset))

    async def main() -> tuple[list[float], list[float], float, CoVisitService]:
        models = ModelAccess()
        service = CoVisitService(Settings(data_dir=tmp_path), models, CoVisitation(PARAMS))
        loop = asyncio.get_running_loop()
        gaps: list[float] = []
        step_waits: list[float] = []
        done = False

        async def ticks() -> None:
            while not done:
                due = loop.time() + 0.001
                await asyncio.sleep(0.001)
                gaps.append(loop.time() - due)

        async def steps() -> None:  # batches arriving during the replay
            while not done:
                asked = loop.time()
                await models.run(time.sleep, 0.001)
                step_waits.append(loop.time() - asked)
                await asyncio.sleep(0.01)

        tasks = [asyncio.create_task(ticks()), asyncio.create_task(steps())]
        await asyncio.sleep(0)
        started = time.perf_counter()
        gc.disable()  # the worker's collections are the integration test's (tests/integration/worker/test_event_loop.py)
        try:
            await service._apply(2, records)
        finally:
            gc.enable()
        took = time.perf_counter() - started
        done = True
        await asyncio.gather(*tasks)
        models.close()
        return gaps, step_waits, took, service

    gaps, step_waits, took, service = asyncio.run(main())
    assert service.covis.applied == 50_000
    assert service._offsets == {2: 500}
    assert took > 0.5, "too little work to show turns"
    assert len(gaps) >= took / 0.01, (len(gaps), took)  # the loop ran at least every 10 ms
    assert sorted(gaps)[int(0.99 * len(gaps))] < 0.02, sorted(gaps)[-5:]
    assert len(step_waits) >= 10 and max(step_waits) < 0.2, (len(step_waits), max(step_waits))


def test_stopping_while_a_save_is_writing_waits_for_it_and_keeps_every_row(tmp_path: Path) -> None:
    """A periodic save was still writing in its thread when the worker stopped: on_stop found nothing
    dirty, closed the store under the write, and the write failed ("Already mutably borrowed"),
    crashing the worker at shutdown and losing the rows of that save."""
    settings = Settings(data_dir=tmp_path)
    live = CoVisitation(PARAMS)
    for n in range(20_000):  # enough rows that building and writing the batch takes many GIL turns
        live.apply(CoVisit(f"i{n}", 1_000 * n, ((f"i{n - 1}", 1.0),) if n else ()))

    async def main() -> None:
        models = ModelAccess()
        service = CoVisitService(settings, models, live)
        await service.on_start()
        service._offsets = {0: 20_000}
        service._dirty = True
        saving = asyncio.create_task(service.save())
        await asyncio.sleep(0)  # the save is now in its thread
        await service.on_stop()
        await saving  # raised on the old code
        models.close()

    asyncio.run(main())
    reopened = CoVisitStore(settings.worker_dir / "covisits")
    restored = CoVisitation(PARAMS)
    assert reopened.load(restored, settings.topic_covisits) == {0: 20_000}
    assert len(restored) == 20_000 and restored.record("i19999") == live.record("i19999")
    reopened.close()
