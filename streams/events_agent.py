"""The events agent: decode a batch, run the core step, write state, publish lists.

Coalescing is the point of batching: a user with several events in one batch has their state
read once, written once and their list published once.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

from aiokafka.partitioner import murmur2
from faust.streams import _current_event
from faust.types import TP, EventT, TableT, TopicT

from models.interest import UserState
from models.covisitation import CoVisit
from models.pipeline import Positioned, Recommender, StepResult
from models.state_codec import decode_state, encode_state
from schemas.decode import InvalidMessage, Limits, decode_event
from schemas.records import EventType
from streams import metrics
from streams.covisit_service import encode_visits
from streams.publishing import DeadLetters, recommendation_value


def partition_for(user_id: str, partitions: int) -> int:
    """The Java client's default partitioner (murmur2), which Faust and our producers use too."""
    return (murmur2(user_id.encode("utf-8")) & 0x7FFFFFFF) % partitions


@contextmanager
def acting_for(event: EventT) -> Iterator[None]:
    """Make `event` Faust's current event, so a table read/write goes to that event's partition.

    Faust routes table access by the current event; inside a batch that is the last event taken,
    which may belong to another partition than the user being written.
    """
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


class EventsProcessor:
    def __init__(
        self,
        *,
        recommender: Recommender,
        table: TableT,
        events_topic: TopicT,
        recommendations_topic: TopicT,
        covisits_topic: TopicT,
        dead_letters: DeadLetters,
        partitions: int,
        limits: Limits,
        model_version: str,
    ) -> None:
        self.recommender = recommender
        self.table = table
        self.events_topic = events_topic
        self.recommendations_topic = recommendations_topic
        self.covisits_topic = covisits_topic
        self.dead_letters = dead_letters
        self.partitions = partitions
        self.limits = limits
        self.model_version = model_version
        # Next offset to apply per partition, for the lag gauge.
        self.positions: dict[TP, int] = {}

    async def process(self, batch: Sequence[EventT]) -> None:
        started = time.perf_counter()
        positioned, origins = await self._decode(batch)
        sources = {pos.event.user_id: fe for pos, fe in zip(positioned, origins)}
        if positioned:
            states = self._read_states(sources)
            result = self.recommender.step(states, positioned)
            # Co-visits are acknowledged before the state is written: after a crash, the state never
            # holds an event whose co-visits were lost (a re-published one is skipped by its offset).
            await self._publish_visits(result, {id(pos.event): fe for pos, fe in zip(positioned, origins)})
            for user_id, state in result.states.items():
                with acting_for(sources[user_id]):
                    self.table[user_id.encode()] = encode_state(state)
            for user_id in result.erased:
                await self._erase(user_id, sources[user_id])
            for user_id, items in result.recommendations.items():
                trigger = result.triggers[user_id]
                await self.recommendations_topic.send(
                    key=user_id.encode(),
                    value=recommendation_value(user_id, items, trigger.event_id, self.model_version),
                )
            metrics.RECS_PUBLISHED.inc(len(result.recommendations))
            metrics.EVENTS_DUPLICATE.inc(len(result.duplicates))
            metrics.EVENTS_UNKNOWN_ITEM.inc(result.unknown_items)
            now = time.time()
            applied = {id(e) for e in result.applied}
            for pos, fe in zip(positioned, origins):
                if id(pos.event) in applied:
                    metrics.EVENTS_IN.labels(pos.event.type.value).inc()
                    if fe.message.timestamp and pos.event.type is not EventType.ERASE:
                        metrics.E2E_LATENCY.observe(max(0.0, now - fe.message.timestamp))
        for fe in batch:
            self.positions[fe.message.tp] = fe.message.offset + 1
        metrics.BATCH_EVENTS.observe(len(batch))
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)

    async def _publish_visits(self, result: StepResult, origin_of: dict[int, EventT]) -> None:
        """One message per events partition, keyed by it (never by a user: co-visits are anonymous)."""
        grouped: dict[int, tuple[list[int], list[CoVisit]]] = {}
        for visit, event in zip(result.visits, result.visit_events):
            msg = origin_of[id(event)].message
            offsets, visits = grouped.setdefault(msg.partition, ([], []))
            offsets.append(msg.offset)
            visits.append(visit)
        pending = [
            await self.covisits_topic.send(key=b"p%d" % source, value=encode_visits(source, offsets, visits))
            for source, (offsets, visits) in grouped.items()
        ]
        for delivery in pending:
            await delivery
        metrics.COVISITS_PUBLISHED.inc(len(result.visits))

    async def _erase(self, user_id: str, source: EventT) -> None:
        """Forget a user: the table row (a changelog tombstone, so recovery cannot bring it back) and
        their list (a tombstone on the compacted recommendations topic)."""
        key = user_id.encode()
        with acting_for(source):
            if key in self.table:
                del self.table[key]
        await self.recommendations_topic.send(key=key, value=None)
        metrics.USERS_ERASED.inc()

    async def report_lag(self, end_offsets: Callable[..., Awaitable[Mapping[TP, int]]]) -> None:
        """Consumer lag per partition: the log's end offset minus the next offset to apply.

        End offsets are asked of the broker: the high watermark of the last fetch goes stale
        exactly when the worker is behind (it fetches only when its buffers have room).
        """
        if not self.positions:
            return
        ends = await end_offsets(*self.positions)
        for tp, end in ends.items():
            metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(0, end - self.positions[tp]))

    async def _decode(self, batch: Sequence[EventT]) -> tuple[list[Positioned], list[EventT]]:
        """Valid, correctly keyed events in order, each with the Faust event it came in."""
        positioned: list[Positioned] = []
        origins: list[EventT] = []
        for fe in batch:
            msg = fe.message
            try:
                event = decode_event(fe.value, self.limits)
            except InvalidMessage as exc:
                await self.dead_letters.send(exc, msg.key, fe.value, msg.topic, msg.partition, msg.offset)
                continue
            if msg.partition != partition_for(event.user_id, self.partitions):
                # Keyed by something else (or by another partitioner): re-send keyed by user, so all of a
                # user's events meet their state in one partition. Applied when it comes back.
                await self.events_topic.send(key=event.user_id.encode(), value=fe.value)
                metrics.EVENTS_REKEYED.inc()
                continue
            positioned.append(Positioned(event, msg.offset))
            origins.append(fe)
        return positioned, origins

    def _read_states(self, sources: dict[str, EventT]) -> dict[str, UserState | None]:
        states: dict[str, UserState | None] = {}
        for user_id, fe in sources.items():
            with acting_for(fe):
                raw = self.table.get(user_id.encode())
            states[user_id] = decode_state(raw) if raw else None
        return states
