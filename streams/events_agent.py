"""The events agent: decode a batch, run the core step, write state, publish lists.

Coalescing is the point of batching: a user with several events in one batch has their state
read once, written once and their list published once.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence

from faust.types import TP, EventT, TopicT

from models.interest import UserState
from models.covisitation import CoVisit
from models.pipeline import Positioned, Recommender, StepResult
from models.state_codec import decode_state, encode_state
from schemas.decode import InvalidMessage, Limits, decode_event
from schemas.records import EventType
from streams import metrics
from streams.batch_output import BatchOutput
from streams.covisit_service import encode_visits
from streams.publishing import DeadLetters, recommendation_value
from streams.table_writes import BatchedTable, Written
from streams.topics import partition_for


# Batches whose output may be on its way to Kafka while the agent goes on (see EventsProcessor._stage).
MAX_STAGES = 4


class EventsProcessor:
    def __init__(
        self,
        *,
        recommender: Recommender,
        users: BatchedTable,
        recommendations_topic: str,
        list_headers: list[tuple[str, bytes]],
        write_lists: Callable[[list[Written]], None],
        output: BatchOutput,
        events_topic: TopicT,
        covisits_topic: str,
        dead_letters: DeadLetters,
        partitions: int,
        limits: Limits,
        model_version: str,
    ) -> None:
        self.recommender = recommender
        self.users = users
        self.recommendations_topic = recommendations_topic
        self.list_headers = list_headers
        # The read API's copy (streams/list_cache.py).
        self.write_lists = write_lists
        self.output = output
        self.events_topic = events_topic
        self.covisits_topic = covisits_topic
        self.dead_letters = dead_letters
        self.partitions = partitions
        self.limits = limits
        self.model_version = model_version
        # Next offset to apply per partition, for the lag gauge.
        self.positions: dict[TP, int] = {}
        self._stages: deque[asyncio.Future[None]] = deque()

    async def process(self, batch: Sequence[EventT]) -> None:
        started = time.perf_counter()
        positioned, origins = await self._decode(batch)
        if positioned:
            partition_of = {pos.event.user_id: fe.message.partition for pos, fe in zip(positioned, origins)}
            result = self.recommender.step(self._read_states(partition_of), positioned)
            if result.visits:
                self._produce_visits(result, {id(pos.event): fe for pos, fe in zip(positioned, origins)})
            for user_id, state in result.states.items():
                self.users.put(partition_of[user_id], user_id.encode(), encode_state(state))
            # This batch's lists; None is an erased user's tombstone on the compacted topic.
            lists: list[Written] = []
            for user_id in result.erased:
                self._erase(user_id, partition_of[user_id])
                lists.append((partition_of[user_id], user_id.encode(), None))
            for user_id, items in result.recommendations.items():
                value = recommendation_value(user_id, items, result.triggers[user_id].event_id, self.model_version)
                lists.append((partition_of[user_id], user_id.encode(), value))
            applied = {id(e) for e in result.applied}
            produced_at = []
            for pos, fe in zip(positioned, origins):
                if id(pos.event) in applied:
                    metrics.EVENTS_IN.labels(pos.event.type.value).inc()
                    if fe.message.timestamp and pos.event.type is not EventType.ERASE:
                        produced_at.append(fe.message.timestamp)
            await self._stage(self.users.write_local(), lists, produced_at)
            metrics.EVENTS_DUPLICATE.inc(len(result.duplicates))
            metrics.EVENTS_UNKNOWN_ITEM.inc(result.unknown_items)
        for fe in batch:
            self.positions[fe.message.tp] = fe.message.offset + 1
        metrics.BATCH_EVENTS.observe(len(batch))
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)

    async def _stage(self, states: list[Written], lists: list[Written], produced_at: list[float]) -> None:
        """Send a batch's changelog records and lists once its co-visits are acknowledged, without
        holding up the next batch. Stages run in batch order (each awaits the one before), so a
        key's changelog records and lists keep their order. At most MAX_STAGES are in flight:
        beyond that the agent waits, which is the backpressure on a slow broker."""
        previous = self._stages[-1] if self._stages else None
        self._stages.append(asyncio.ensure_future(self._publish(previous, states, lists, produced_at)))
        while len(self._stages) > MAX_STAGES or (self._stages and self._stages[0].done()):
            await self._stages.popleft()  # re-raises a failed stage: the worker stops, nothing is committed

    async def _publish(
        self, previous: asyncio.Future[None] | None, states: list[Written], lists: list[Written],
        produced_at: list[float],
    ) -> None:
        if previous is not None:
            await previous
        # Co-visits are acknowledged before the state is sent: after a crash, the changelog never
        # holds an event whose co-visits were lost (a re-published one is skipped by its offset).
        await self.output.flush()
        self.users.send_changelog(states)
        for partition, key, value in lists:
            self.output.produce(self.recommendations_topic, key, value, partition, headers=self.list_headers)
        self.write_lists(lists)
        # Latency and freshness count from the moment a list is handed to the producer.
        now = time.time()
        for ts in produced_at:
            metrics.E2E_LATENCY.observe(max(0.0, now - ts))
        published = sum(1 for _, _, value in lists if value is not None)
        metrics.RECS_PUBLISHED.inc(published)
        if published:
            metrics.LAST_PUBLISHED.set(now)

    async def drain(self) -> None:
        """Everything produced so far acknowledged by Kafka; called before Faust commits offsets."""
        while self._stages:
            await self._stages.popleft()
        await self.output.flush()
        self.users.mark_persisted()

    def _produce_visits(self, result: StepResult, origin_of: dict[int, EventT]) -> None:
        """One message per events partition, keyed by it (never by a user: co-visits are anonymous)."""
        grouped: dict[int, tuple[list[int], list[CoVisit]]] = {}
        for visit, event in zip(result.visits, result.visit_events):
            msg = origin_of[id(event)].message
            offsets, visits = grouped.setdefault(msg.partition, ([], []))
            offsets.append(msg.offset)
            visits.append(visit)
        for source, (offsets, visits) in grouped.items():
            self.output.produce(self.covisits_topic, b"p%d" % source, encode_visits(source, offsets, visits))
        metrics.COVISITS_PUBLISHED.inc(len(result.visits))

    def _erase(self, user_id: str, partition: int) -> None:
        """Forget a user's state: the table row goes (a changelog tombstone, so recovery cannot bring
        it back). `process` also sends a tombstone for their list."""
        self.users.put(partition, user_id.encode(), None)
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

    def _read_states(self, partition_of: dict[str, int]) -> dict[str, UserState | None]:
        keys: dict[int, list[bytes]] = {}
        for user_id, partition in partition_of.items():
            keys.setdefault(partition, []).append(user_id.encode())
        raw = self.users.read(keys)
        return {u: decode_state(v) if (v := raw[u.encode()]) else None for u in partition_of}
