"""Reading partitions without holes: a fetch that jumps past unread events is read again, never acked.

`drain` below follows Faust's `Consumer._drain_messages` rule for each record: delivered when at or
past the read offset, a hole acked when it jumps more than one past it, then the read offset set to
it. The race is the one the scale-out test found: a fetch from before the rebalance's seek is
iterated around it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from faust.types import TP

from streams.worker.contiguous_fetch import ReadGuard, guard_of, without_holes

EVENTS = TP("events", 0)
OTHER = TP("events", 1)


@dataclass
class FakeConsumer:
    """A partition log per TP, a fetch position and Faust's read offsets; `seek` as Faust's."""

    logs: dict[TP, list[int]]
    acked_topics: set[str] = field(default_factory=lambda: {"events"})
    position: dict[TP, int] = field(default_factory=dict)
    _read_offset: dict[TP, int | None] = field(default_factory=dict)
    seeks: list[tuple[TP, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.app = SimpleNamespace(topics=SimpleNamespace(acks_enabled_for=lambda topic: topic in self.acked_topics))

    async def seek(self, partition: TP, offset: int) -> None:
        self.seeks.append((partition, offset))
        self.position[partition] = offset
        self._read_offset[partition] = offset if offset else None

    def fetch(self, n: int) -> list[tuple[TP, Any]]:
        """Up to `n` records per partition from its position, advancing it (as aiokafka's getmany)."""
        out = []
        for tp, log in self.logs.items():
            start = self.position.get(tp, log[0])
            got = [o for o in log if o >= start][:n]
            if got:
                self.position[tp] = got[-1] + 1
            out += [(tp, SimpleNamespace(topic=tp.topic, offset=o)) for o in got]
        return out


async def records(fetched: list[tuple[TP, Any]], before: Callable[[int], None] = lambda offset: None
                  ) -> AsyncIterator[tuple[TP, Any]]:
    for tp, message in fetched:
        before(message.offset)
        await asyncio.sleep(0)
        yield tp, message


@dataclass
class Drain:
    """What Faust's drain loop does with each record, and whether the streams take it (flow)."""

    consumer: FakeConsumer
    flowing: bool = True
    delivered: dict[TP, list[int]] = field(default_factory=dict)
    holes: list[tuple[TP, int, int]] = field(default_factory=list)

    async def run(self, it: AsyncIterator[tuple[TP, Any]]) -> None:
        async for tp, message in it:
            r = self.consumer._read_offset.get(tp)
            if r is None or message.offset >= r:
                if r and message.offset - r > 1:
                    self.holes.append((tp, r + 1, message.offset))
                if self.flowing:
                    self.delivered.setdefault(tp, []).append(message.offset)
                self.consumer._read_offset[tp] = message.offset


def run_rebalance_race(guarded: bool) -> Drain:
    """Committed offset 100; a fetch from before the seek brings 100-199; its records up to 143 go
    nowhere (flow suspended); then the seek to 100 lands, flow resumes, and the stale position (200)
    survives the seek, as it did in the worker. Then fetches continue until the log is read."""
    consumer = FakeConsumer({EVENTS: list(range(100, 260))}, position={EVENTS: 100})
    drain = Drain(consumer, flowing=False)

    def seek_lands(offset: int) -> None:
        if offset == 144:
            consumer._read_offset[EVENTS] = 100
            drain.flowing = True  # the position stays at 200: the stale fetch's consumption won

    stale = consumer.fetch(100)

    async def main() -> None:
        wrap = (lambda it: without_holes(consumer, it)) if guarded else (lambda it: it)
        await drain.run(wrap(records(stale, seek_lands)))
        for _ in range(10):
            await drain.run(wrap(records(consumer.fetch(100))))

    asyncio.run(main())
    return drain


def test_without_the_guard_the_race_acks_unread_events_as_a_hole() -> None:
    """The failure the guard exists for, reproduced: events 100-143 acked unread and never read."""
    drain = run_rebalance_race(guarded=False)
    assert drain.holes == [(EVENTS, 101, 144)]
    assert not set(range(100, 144)) & set(drain.delivered[EVENTS])


def test_a_fetch_that_jumps_past_unread_events_is_read_again_from_the_read_offset() -> None:
    drain = run_rebalance_race(guarded=True)
    assert drain.holes == []
    assert set(drain.delivered[EVENTS]) == set(range(100, 260)), "every event reaches the streams"
    assert drain.delivered[EVENTS] == sorted(drain.delivered[EVENTS]), "in order"


def test_a_real_hole_is_read_once_more_then_left_to_faust() -> None:
    """Offsets 110-114 hold no records (say, transaction markers): one re-read, then Faust acks the hole."""
    log = [o for o in range(100, 130) if not 110 <= o < 115]
    consumer = FakeConsumer({EVENTS: log}, position={EVENTS: 100})
    drain = Drain(consumer)

    async def main() -> None:
        for _ in range(4):
            await drain.run(without_holes(consumer, records(consumer.fetch(100))))

    asyncio.run(main())
    assert consumer.seeks == [(EVENTS, 109)]
    assert drain.holes == [(EVENTS, 110, 115)]
    assert guard_of(consumer).hole_confirmed(EVENTS, 110), "the hole Faust records is the confirmed one"
    assert set(drain.delivered[EVENTS]) == set(log)


def test_only_the_jumping_partition_is_held_back() -> None:
    consumer = FakeConsumer({EVENTS: list(range(10, 20)), OTHER: list(range(50, 60))}, position={EVENTS: 10})
    consumer._read_offset = {EVENTS: 3, OTHER: 49}  # EVENTS was read to 3: 4-9 are missing from this fetch
    drain = Drain(consumer)
    asyncio.run(drain.run(without_holes(consumer, records(consumer.fetch(100)))))
    assert EVENTS not in drain.delivered and drain.delivered[OTHER] == list(range(50, 60))
    assert consumer.seeks == [(EVENTS, 3)]


def test_topics_faust_does_not_ack_are_not_guarded() -> None:
    consumer = FakeConsumer({EVENTS: list(range(10, 20))}, acked_topics=set(), position={EVENTS: 10})
    consumer._read_offset = {EVENTS: 3}
    drain = Drain(consumer)
    asyncio.run(drain.run(without_holes(consumer, records(consumer.fetch(100)))))
    assert drain.delivered[EVENTS] == list(range(10, 20)) and consumer.seeks == []


def test_guard_rules() -> None:
    guard = ReadGuard()
    assert guard.admit(EVENTS, 5, None) and guard.admit(EVENTS, 5, 0), "no read offset yet: Faust sees no hole"
    assert guard.admit(EVENTS, 6, 5) and guard.admit(EVENTS, 5, 5), "the next record, or the same one again"
    assert not guard.admit(EVENTS, 9, 5), "a jump is held back once"
    assert guard.admit(EVENTS, 5, 5), "the re-read starts with the record at the read offset"
    assert guard.admit(EVENTS, 9, 5), "and passes when the re-read jumps from the same offset"
    assert guard.hole_confirmed(EVENTS, 6) and not guard.hole_confirmed(EVENTS, 6), "confirmed once"
    assert not guard.admit(EVENTS, 30, 20), "a new jump is checked again"
    assert guard.admit(EVENTS, 21, 20) and not guard.hole_confirmed(EVENTS, 21), "a re-read without a hole"
