"""The fetch watchdog: a partition with events waiting and a read offset that stays put is reported once."""

from __future__ import annotations

import asyncio

from faust.types import TP

from streams.worker import metrics
from streams.worker.fetch_watchdog import STALL_S, FetchWatchdog, partition_switches, read_again

EVENTS = TP("events", 0)
OTHER = TP("events", 1)


class FakeConsumer:
    """The attributes of Faust's consumer the watchdog reads (no aiokafka consumer under it)."""

    def __init__(self) -> None:
        self._read_offset: dict[TP, int | None] = {EVENTS: 333, OTHER: 90}
        self._active_partitions = {OTHER}
        self._paused_partitions: set[TP] = set()
        self._buffered_partitions = {EVENTS}
        self.flow_active = True
        self.highwaters = {EVENTS: 1247, OTHER: 91}

        self.sought: list[tuple[TP, int]] = []

    def highwater(self, tp: TP) -> int:
        return self.highwaters[tp]

    async def seek(self, tp: TP, offset: int) -> None:
        self.sought.append((tp, offset))


def stalls() -> float:
    return metrics.FETCH_STALLS._value.get()


def test_a_partition_with_events_waiting_and_no_progress_is_reported_once_with_its_switches(caplog) -> None:
    consumer, dog, before = FakeConsumer(), FetchWatchdog.__new__(FetchWatchdog), stalls()
    dog._seen = {}
    both = [EVENTS, OTHER]
    assert dog.check(consumer, both, 0.0) == []
    assert dog.check(consumer, both, STALL_S - 1) == []
    # OTHER is read up to its high-water mark (offset 90 of 0..90): nothing waits there.
    assert dog.check(consumer, both, STALL_S) == [(EVENTS, 333)]
    assert dog.check(consumer, both, STALL_S + 60) == [], "one report per stall"
    assert stalls() == before + 1
    assert "events[0] has events to read (high-water mark 1247) but its read offset has stayed at 333" in caplog.text
    assert "'faust_active': False" in caplog.text and "'faust_buffered': True" in caplog.text
    # Progress ends the stall; a new one is reported again.
    consumer._read_offset[EVENTS] = 400
    assert dog.check(consumer, both, STALL_S + 61) == []
    assert dog.check(consumer, both, 2 * STALL_S + 62) == [(EVENTS, 400)]
    assert stalls() == before + 2


def test_a_partition_that_moves_or_is_revoked_is_never_reported() -> None:
    consumer, dog = FakeConsumer(), FetchWatchdog.__new__(FetchWatchdog)
    dog._seen = {}
    for step in range(10):
        consumer._read_offset[EVENTS] = 333 + step
        assert dog.check(consumer, [EVENTS], step * STALL_S) == []
    assert dog.check(consumer, [OTHER], 20 * STALL_S) == [] and EVENTS not in dog._seen


def test_the_switches_say_what_faust_holds_without_an_aiokafka_consumer() -> None:
    got = partition_switches(FakeConsumer(), EVENTS)
    assert got == {"read_offset": 333, "faust_active": False, "faust_paused": False, "faust_buffered": True,
                   "flow_active": True}


def test_a_stalled_partition_is_read_again_from_its_read_offset_unless_faust_holds_it() -> None:
    consumer = FakeConsumer()
    assert asyncio.run(read_again(consumer, [(EVENTS, 333), (OTHER, None)])) == [EVENTS]
    assert consumer.sought == [(EVENTS, 333)], "nothing read yet: nothing to go back to"
    consumer._paused_partitions = {EVENTS}  # a recovery under way
    assert asyncio.run(read_again(consumer, [(EVENTS, 333)])) == []
    consumer._paused_partitions, consumer.flow_active = set(), False  # a rebalance under way
    assert asyncio.run(read_again(consumer, [(EVENTS, 333)])) == [] and consumer.sought == [(EVENTS, 333)]


def test_a_partition_faust_holds_on_purpose_is_not_a_stall() -> None:
    """Paused for a table recovery, or the flow stopped for a rebalance: the 30 s count starts when it ends."""
    consumer, dog = FakeConsumer(), FetchWatchdog.__new__(FetchWatchdog)
    dog._seen = {}
    consumer._paused_partitions = {EVENTS}
    for step in range(5):
        assert dog.check(consumer, [EVENTS], step * STALL_S) == []
    consumer._paused_partitions, consumer.flow_active = set(), False
    assert dog.check(consumer, [EVENTS], 5 * STALL_S) == []
    consumer.flow_active = True
    assert dog.check(consumer, [EVENTS], 6 * STALL_S - 1) == []
    assert dog.check(consumer, [EVENTS], 6 * STALL_S) == [(EVENTS, 333)]
