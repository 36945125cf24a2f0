"""Faust's own end of recovery, run on fakes: stream partitions become fetchable only after their seek
and after the streams' queues are cleared, never in between (where fetched records were cleared)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from faust.tables.recovery import Recovery
from faust.transport.consumer import Consumer
from faust.types import TP

from streams.worker import resume_after_seek as ras

EVENTS = TP("events", 0)
CHANGELOG = TP("app-users-changelog", 0)


class FakeConsumer:
    """The parts of a Faust consumer that resuming touches, with recstream's resume methods."""

    resume_partitions = ras.resume_partitions
    resume_flow = ras.resume_flow

    def __init__(self, journal: list[str]) -> None:
        self.journal = journal
        self._active_partitions: set[TP] = set()
        self._paused_partitions: set[TP] = {EVENTS}
        self.flow_active = False
        self.can_resume_flow = asyncio.Event()
        self.suspend_flow = asyncio.Event()

    def _get_active_partitions(self) -> set[TP]:
        return self._active_partitions

    def assignment(self) -> set[TP]:
        return {EVENTS, CHANGELOG}

    async def perform_seek(self) -> None:
        self.journal.append(f"seek (events fetchable: {EVENTS in self._active_partitions})")
        await asyncio.sleep(0)  # the window in which Faust's fetcher runs


def fake_recovery(journal: list[str]) -> Any:
    consumer = FakeConsumer(journal)

    async def nothing(*args: Any, **kwargs: Any) -> None:
        return None

    async def wait(coro: Any, timeout: Any = None) -> None:
        await coro

    app = SimpleNamespace(
        consumer=consumer, consumer_generation_id=0, conf=SimpleNamespace(broker_request_timeout=30),
        on_rebalance_complete=SimpleNamespace(send=nothing), _fetcher=SimpleNamespace(maybe_start=nothing),
        flow_control=SimpleNamespace(resume=lambda: journal.append(
            f"queues cleared (events fetchable: {EVENTS in consumer._active_partitions})")),
        on_rebalance_end=lambda: journal.append(f"ready (events fetchable: {EVENTS in consumer._active_partitions})"),
    )
    return SimpleNamespace(
        app=app, log=SimpleNamespace(info=lambda *a: None, dev=lambda *a: None), _wait=wait,
        completed=asyncio.Event(), _is_changelog_tp=lambda tp: tp == CHANGELOG,
        tables=SimpleNamespace(on_actives_ready=lambda: None, on_standbys_ready=lambda: None),
    )


def faust_resume_streams() -> Any:
    method = Recovery._resume_streams
    return getattr(method, "__wrapped__", method)


def test_faust_alone_makes_partitions_fetchable_before_the_seek_and_the_clearing() -> None:
    """The window the loss came through, in Faust's own method."""
    journal: list[str] = []
    recovery = fake_recovery(journal)
    recovery.app.consumer.resume_partitions = lambda tps: Consumer.resume_partitions(recovery.app.consumer, tps)
    asyncio.run(faust_resume_streams()(recovery, 0))
    assert journal[:2] == ["seek (events fetchable: True)", "queues cleared (events fetchable: True)"]


def test_held_resumes_make_partitions_fetchable_only_after_the_seek_and_the_clearing() -> None:
    journal: list[str] = []
    recovery = fake_recovery(journal)
    asyncio.run(ras.holding_resumes(faust_resume_streams())(recovery, 0))
    assert journal == ["seek (events fetchable: False)", "queues cleared (events fetchable: False)",
                       "ready (events fetchable: True)"]
    assert recovery.app.consumer.flow_active and ras._HELD not in recovery.app.consumer.__dict__


def test_partitions_held_by_a_method_that_ends_early_are_resumed_when_it_ends() -> None:
    journal: list[str] = []
    recovery = fake_recovery(journal)

    async def ends_after_resuming(self: Any) -> None:
        self.app.consumer.resume_partitions({EVENTS})
        raise asyncio.TimeoutError("the seek timed out")

    try:
        asyncio.run(ras.holding_resumes(ends_after_resuming)(recovery))
    except asyncio.TimeoutError:
        pass
    assert EVENTS in recovery.app.consumer._active_partitions, "resumed as Faust would have"


def test_outside_the_end_of_recovery_resumes_are_immediate() -> None:
    consumer = FakeConsumer([])
    consumer.resume_partitions({EVENTS})
    assert EVENTS in consumer._active_partitions and EVENTS not in consumer._paused_partitions


def test_installing_twice_wraps_once() -> None:
    ras.resume_after_seek()
    first = Recovery.on_recovery_completed
    ras.resume_after_seek()
    assert Recovery.on_recovery_completed is first and Consumer.resume_flow is ras.resume_flow
