"""A partition is read without holes: a record past the next expected offset sends the read back.

Faust's consumer treats a record whose offset jumps past the last one it read as a hole in the
partition (a transaction marker, a compacted-away record) and acks the missing offsets, so the
next commit passes over them. That is right for real holes and silent loss for anything else. The
scale-out test found such a case (one run in three lost 50-357 events): records fetched while a
recovery ended were cleared from the stream queues unprocessed, and the next record looked like
the far side of a hole. streams/worker/resume_after_seek.py closes that window; this guard is the
second line, for any other way a fetch could jump.

On every topic whose offsets Faust acks, a record that Faust would take for the far side of a
hole is held back, with the rest of its partition's records from that fetch, and the partition is
sought back to where Faust last read. If the re-read jumps from the same offset again, the hole is
real and Faust records it as before. Events read twice are recognised by their offsets in the
users' state. A hole Faust would record that the re-read did not confirm (a seek racing the check)
is not acked: commits wait there, and the next rebalance or restart reads it again.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from faust.transport.consumer import Consumer
from faust.types import TP

log = logging.getLogger(__name__)

_original_getmany = Consumer.getmany
_original_add_gap = Consumer._add_gap


class ReadGuard:
    """Per consumer: the partitions sought back to re-read a hole, and the holes a re-read confirmed.

    Faust's rule, mirrored here: a record at `offset` is the far side of a hole when the partition's
    read offset `r` is set (not None or 0) and `offset - r > 1`; Faust then acks `r + 1 .. offset`.
    """

    def __init__(self) -> None:
        self.rechecking: dict[TP, int] = {}  # partition -> read offset it was sought back to
        self.confirmed: dict[TP, int] = {}  # partition -> read offset a re-read jumped from again

    def admit(self, tp: TP, offset: int, read_offset: int | None) -> bool:
        """Whether the record may go on to Faust; False: seek `tp` back to `read_offset` and hold
        back the rest of its records from this fetch."""
        if not read_offset or offset - read_offset <= 1:
            if offset != self.rechecking.get(tp):  # the re-read of the sought record itself decides nothing
                self.rechecking.pop(tp, None)
            return True
        if self.rechecking.get(tp) == read_offset:
            del self.rechecking[tp]
            self.confirmed[tp] = read_offset
            return True
        self.rechecking[tp] = read_offset
        return False

    def hole_confirmed(self, tp: TP, start: int) -> bool:
        """Whether Faust's hole from `start` (read offset + 1) is one a re-read confirmed."""
        return self.confirmed.pop(tp, None) == start - 1


class GuardedConsumer(Protocol):
    """What the guard uses of a Faust consumer."""

    app: Any
    _read_offset: Any

    async def seek(self, partition: TP, offset: int) -> None: ...


def guard_of(consumer: Any) -> ReadGuard:
    return consumer.__dict__.setdefault("_recstream_read_guard", ReadGuard())


async def without_holes(
    consumer: GuardedConsumer, records: AsyncIterator[tuple[TP, Any]],
    on_rewind: Callable[[TP, int, int], None] = lambda tp, read, got: None,
) -> AsyncIterator[tuple[TP, Any]]:
    """`records` (one fetch, as Faust's drain loop takes them), with holes re-read first."""
    guard = guard_of(consumer)
    held_back: set[TP] = set()
    acks_enabled_for = consumer.app.topics.acks_enabled_for
    async for tp, message in records:
        if tp in held_back:
            continue
        read_offset = consumer._read_offset.get(tp)
        if acks_enabled_for(message.topic) and not guard.admit(tp, message.offset, read_offset):
            held_back.add(tp)
            on_rewind(tp, read_offset, message.offset)
            await consumer.seek(tp, read_offset)
            continue
        yield tp, message


def _count_rewind(tp: TP, read_offset: int, got: int) -> None:
    from streams.worker import metrics  # imported here: the guard itself stays free of the worker's registry

    metrics.FETCH_REWINDS.inc()
    log.info("fetched past a hole in %s[%d]: read to %d, the fetch went on at %d; reading it again from %d",
             tp.topic, tp.partition, read_offset, got, read_offset)


async def _getmany(self: Any, timeout: float) -> AsyncIterator[tuple[TP, Any]]:
    async for item in without_holes(self, _original_getmany(self, timeout), _count_rewind):
        yield item


async def _add_gap(self: Any, tp: TP, offset_from: int, offset_to: int) -> None:
    if guard_of(self).hole_confirmed(tp, offset_from):
        await _original_add_gap(self, tp, offset_from, offset_to)
        return
    from streams.worker import metrics

    metrics.FETCH_HOLES_REFUSED.inc()
    log.warning("a hole in %s[%d] at offsets %d-%d was not confirmed by a re-read: they stay unacked, so commits "
                "wait there and the next rebalance or restart reads them again", tp.topic, tp.partition,
                offset_from, offset_to)


def read_without_holes() -> None:
    """Install the guard for every Faust consumer (idempotent)."""
    Consumer.getmany = _getmany  # type: ignore[assignment]
    Consumer._add_gap = _add_gap  # type: ignore[method-assign]
