"""A partition that has unread events but is not being read: counted, and described in the log.

The read guard (streams/worker/contiguous_fetch.py) seeks a partition back when a fetch jumps past
unread events. Once in six crash-safety runs a partition was not read again after such a seek: the
worker went on with its other partitions and its events stayed unapplied (docs/operations.md, Known
issues). Faust and aiokafka keep several switches that decide whether a partition is fetched (Faust's
active, paused and buffered sets; aiokafka's pause flag, its position and the records it holds for
the partition), and none of them is visible from outside. This watchdog reads them when a partition
has had events waiting (the broker's high-water mark above what was read) and no progress for
STALL_S, logs them in one line and counts the stall, so the next occurrence says which switch held it.

Then it seeks the partition back to where Faust read it to, as the read guard does for a hole: a
fresh seek resets aiokafka's position and wakes its fetcher, whichever switch was stuck, and events
read twice are recognised by their offsets in the users' state. A partition Faust paused itself
(a recovery under way) or whose flow is stopped (a rebalance) is left to Faust.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from mode import Service

from streams.worker import metrics

log = logging.getLogger(__name__)

CHECK_S = 5.0
STALL_S = 30.0


@dataclass
class _Seen:
    read_offset: int | None
    since: float
    reported: bool = False


def partition_switches(consumer: Any, tp: Any) -> dict[str, Any]:
    """What decides whether `tp` is fetched, as Faust's consumer and the aiokafka consumer under it hold it.

    Read from the event loop's thread while aiokafka runs in its own: a snapshot for a log line, not a
    consistent state."""
    active = consumer._active_partitions
    out: dict[str, Any] = {
        "read_offset": consumer._read_offset.get(tp),
        "faust_active": None if active is None else tp in active,
        "faust_paused": tp in consumer._paused_partitions,
        "faust_buffered": tp in consumer._buffered_partitions,
        "flow_active": consumer.flow_active,
    }
    inner = getattr(getattr(consumer, "_thread", None), "_consumer", None)
    if inner is None:
        return out
    try:
        state = inner._subscription.subscription.assignment.state_value(tp)
        fetcher = inner._fetcher
        held = fetcher._records.get(tp)
        out.update({
            "aiokafka_position": state.position if state.has_valid_position else None,
            "aiokafka_paused": state.paused,
            "aiokafka_highwater": state.highwater,
            "aiokafka_held": None if held is None else repr(held),
            "aiokafka_in_flight_nodes": sorted(fetcher._in_flight),
        })
    except Exception as exc:  # a rebalance between the two reads; the next check tries again
        out["aiokafka"] = f"unreadable: {exc!r}"
    return out


class FetchWatchdog(Service):
    """Every CHECK_S: a partition of `topic` whose read offset has not moved for STALL_S while the broker
    has more is reported once per stall (the counter, and a warning with `partition_switches`)."""

    def __init__(self, app: Any, topic: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.app = app
        self.topic = topic
        self._seen: dict[Any, _Seen] = {}

    @Service.task
    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.should_stop:
            await self.sleep(CHECK_S)
            try:
                consumer = self.app.consumer
                assignment = [tp for tp in consumer.assignment() if tp.topic == self.topic]
            except Exception:  # not started, or between generations
                continue
            await read_again(consumer, self.check(consumer, assignment, loop.time()))

    def check(self, consumer: Any, assignment: list[Any], now: float) -> list[tuple[Any, int | None]]:
        """Report the stalled partitions of `assignment` at time `now`; returns the newly reported ones,
        each with its read offset."""
        reported: list[tuple[Any, int | None]] = []
        self._seen = {tp: seen for tp, seen in self._seen.items() if tp in assignment}
        for tp in assignment:
            read = consumer._read_offset.get(tp)
            seen = self._seen.get(tp)
            held_on_purpose = not consumer.flow_active or tp in consumer._paused_partitions  # a rebalance, a recovery
            if seen is None or seen.read_offset != read or held_on_purpose:
                self._seen[tp] = _Seen(read, now)
                continue
            highwater = _highwater(consumer, tp)
            waiting = highwater is not None and highwater > (read if read is not None else -1) + 1
            if waiting and not seen.reported and now - seen.since >= STALL_S:
                seen.reported = True
                reported.append((tp, read))
                metrics.FETCH_STALLS.inc()
                log.warning(f"{tp.topic}[{tp.partition}] has events to read (high-water mark {highwater}) but its read "
                            f"offset has stayed at {read} for {now - seen.since:.0f} s: "
                            f"{partition_switches(consumer, tp)}")
        return reported


async def read_again(consumer: Any, stalled: list[tuple[Any, int | None]]) -> list[Any]:
    """Seek each stalled partition back to its read offset, unless Faust holds it on purpose (paused for a
    recovery, or the flow stopped for a rebalance) or has read nothing of it yet; returns those sought."""
    sought = []
    for tp, read_offset in stalled:
        if read_offset is not None and consumer.flow_active and tp not in consumer._paused_partitions:
            log.warning(f"{tp.topic}[{tp.partition}]: reading it again from {read_offset}")
            await consumer.seek(tp, read_offset)
            sought.append(tp)
    return sought


def _highwater(consumer: Any, tp: Any) -> int | None:
    try:
        return consumer.highwater(tp)
    except Exception:
        return None
