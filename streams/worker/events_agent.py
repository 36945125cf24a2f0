"""The events agent: decode a batch, run the core step, write state, publish lists.

Coalescing is the point of batching: a user with several events in one batch has their state
read once, written once and their list published once.

Failures never cost an event silently. A step that raises is retried; if it keeps failing, the
batch is applied event by event and only the events that fail on their own are dead-lettered
(`processing_failed`). Anything else that fails (the whole batch in the step, the state write,
Kafka refusing output) latches `failed`: from then on no offset is committed
(streams/worker/commit_gate.py) and the worker stops, so a restart redelivers the batch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from faust.types import TP, EventT

from models.covisitation import CoVisit
from models.interest import UserState
from models.pipeline import Positioned, Recommender, StepResult
from models.state_codec import StateDecodeError, decode_state, encode_state
from schemas.decode import PROCESSING_FAILED, STATE_UNREADABLE, InvalidMessage, Limits, decode_event
from schemas.records import Event, EventType
from streams.kafka.topics import ORIGIN_HEADER, partition_for
from streams.worker import metrics
from streams.worker.batch_output import BatchOutput
from streams.worker.covisit_service import encode_visits
from streams.worker.model_access import ModelAccess
from streams.worker.publishing import DeadLetters, recommendation_value
from streams.worker.table_writes import BatchedTable, Written

log = logging.getLogger(__name__)

# Batches whose output may be on its way to Kafka while the agent goes on (see EventsProcessor._stage).
MAX_STAGES = 4
# Tries of a whole batch's step before it is applied event by event (a transient fault passes).
STEP_ATTEMPTS = 3


class BatchFailed(RuntimeError):
    """Every event of a batch failed on its own: the fault is the worker's, not an event's; stop."""


class EventsProcessor:
    def __init__(
        self,
        *,
        recommender: Recommender,
        models: ModelAccess,
        users: BatchedTable,
        recommendations_topic: str,
        list_headers: list[tuple[str, bytes]],
        write_lists: Callable[[list[Written]], None],
        output: BatchOutput,
        covisits_topic: str,
        dead_letters: DeadLetters,
        partitions: int,
        limits: Limits,
        model_version: str,
    ) -> None:
        self.recommender = recommender
        # Where the step runs: the models thread, never beside a write to the index or co-visitation.
        self.models = models
        self.users = users
        self.recommendations_topic = recommendations_topic
        self.list_headers = list_headers
        # The read API's copy (streams/worker/list_cache.py).
        self.write_lists = write_lists
        self.output = output
        self.covisits_topic = covisits_topic
        self.dead_letters = dead_letters
        self.partitions = partitions
        self.limits = limits
        self.model_version = model_version
        # Next offset to apply per partition, for the lag gauge.
        self.positions: dict[TP, int] = {}
        self._stages: deque[asyncio.Future[None]] = deque()
        # The first failure that stopped this processor: once set, nothing is committed again.
        self.failed: BaseException | None = None

    def fail(self, exc: BaseException) -> None:
        """Latch a failure: the commit gate refuses every later commit, so a restart redelivers.

        A cancellation counts too: Faust cancels its agents when the worker stops, and then acks the
        batch that was cut short, which its shutdown commit would otherwise cover."""
        if self.failed is None:
            self.failed = exc
            for stage in self._stages:  # their errors are this one's consequences: retrieved, not raised
                stage.add_done_callback(lambda f: f.cancelled() or f.exception())
            if isinstance(exc, asyncio.CancelledError):
                log.info("stopped in the middle of a batch: its events are not committed and will be redelivered")
                return
            metrics.WORKER_FAILURES.labels(type(exc).__name__).inc()
            log.error("events processing failed; no offset will be committed and the worker stops so a "
                      "restart redelivers the batch: %s: %s", type(exc).__name__, exc)

    async def process(self, batch: Sequence[EventT]) -> None:
        if self.failed is not None:
            raise RuntimeError("the events processor failed earlier; the worker is stopping") from self.failed
        try:
            await self._process(batch)
        except BaseException as exc:
            self.fail(exc)
            raise

    async def _process(self, batch: Sequence[EventT]) -> None:
        """Decoding, the step and encoding run in the models thread (streams/worker/model_access.py);
        the loop keeps what touches Faust, the table and the producer, each a few ms per batch."""
        started = time.perf_counter()
        decoded = await self.models.run(decode_all, batch, self.limits)
        positioned, origins = self._route(batch, decoded)
        if positioned:
            partition_of = {pos.event.user_id: fe.message.partition for pos, fe in zip(positioned, origins)}
            computed = await self.models.run(self._compute, self._read_raw_states(partition_of), positioned)
            self._dead_letter_failures(computed, partition_of, positioned, origins)
            result = computed.result
            if result.visits:
                self._produce_visits(result, {id(pos.event): fe for pos, fe in zip(positioned, origins)})
            for user_id, value in computed.states.items():
                self.users.put(partition_of[user_id], user_id.encode(), value)
            # This batch's lists; None is an erased user's tombstone on the compacted topic.
            lists: list[Written] = []
            for user_id in result.erased:
                self._erase(user_id, partition_of[user_id])
                lists.append((partition_of[user_id], user_id.encode(), None))
            for user_id, value in computed.lists.items():
                lists.append((partition_of[user_id], user_id.encode(), value))
            applied = {id(e) for e in result.applied}
            produced_at = []
            by_type: Counter[str] = Counter()
            for pos, fe in zip(positioned, origins):
                if id(pos.event) in applied:
                    by_type[pos.event.type.value] += 1
                    if fe.message.timestamp and pos.event.type is not EventType.ERASE:
                        produced_at.append(fe.message.timestamp)
            for kind, n in by_type.items():  # one labelled increment per type, not per event
                metrics.EVENTS_IN.labels(kind).inc(n)
            await self._stage(self.users.stage(), lists, produced_at)
            metrics.count_online(result.online)
            metrics.EVENTS_DUPLICATE.inc(len(result.duplicates))
            metrics.EVENTS_UNKNOWN_ITEM.inc(result.unknown_items)
        for fe in batch:
            self.positions[fe.message.tp] = fe.message.offset + 1
        metrics.BATCH_EVENTS.observe(len(batch))
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)

    async def _stage(self, states: tuple[int, list[Written]], lists: list[Written], produced_at: list[float]) -> None:
        """Send a batch's changelog records and lists once its co-visits are acknowledged, without
        holding up the next batch. Stages run in batch order (each awaits the one before), so a
        key's changelog records and lists keep their order. At most MAX_STAGES are in flight:
        beyond that the agent waits, which is the backpressure on a slow broker."""
        previous = self._stages[-1] if self._stages else None
        self._stages.append(asyncio.ensure_future(self._publish(previous, states, lists, produced_at)))
        while len(self._stages) > MAX_STAGES:
            await self._stages[0]
            self._reap_stages()
        self._reap_stages()

    def _reap_stages(self) -> None:
        """Take finished stages off the queue, oldest first; a failed one re-raises (`process` latches it).

        A stage leaves the queue only once it is done, never while it runs: the next batch's stage
        chains onto the newest one still in the queue, so if a running stage were taken off (by a
        drain, say), a newer batch's changelog record could overtake an older one's for the same
        user, and the older state would win on disk and in the changelog."""
        while self._stages and self._stages[0].done():
            self._stages.popleft().result()

    async def _publish(
        self, previous: asyncio.Future[None] | None, states: tuple[int, list[Written]], lists: list[Written],
        produced_at: list[float],
    ) -> None:
        if previous is not None:
            await previous
        # Co-visits are acknowledged before the state is sent: after a crash, the changelog never
        # holds an event whose co-visits were lost (a re-published one is skipped by its offset).
        sent = self.users.last_sent()
        await self.output.flush()
        # That flush also acknowledged the earlier batches' changelog records: now they may reach RocksDB.
        self.users.persist_sent(sent)
        self.users.send_changelog(*states)
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
        """Everything produced so far acknowledged by Kafka; called before Faust commits offsets.
        A failure here latches `failed` (and re-raises): the commit it guards must not happen."""
        try:
            while self._stages:
                await self._stages[-1]  # the newest stage waits for every one before it
                self._reap_stages()
            # A batch may stage more while this waits; only what was sent before the flush is persisted.
            sent = self.users.last_sent()
            await self.output.flush()
        except BaseException as exc:
            self.fail(exc)
            raise
        self.users.mark_persisted(sent)

    def _compute(self, raw: Mapping[str, bytes | None], positioned: list[Positioned]) -> Computed:
        """Everything between the table read and the writes, in the models thread: stored states
        decoded, the step, new states and lists encoded. Failures come back as values for the loop
        to dead-letter; only a fault of the worker's own raises."""
        states, quarantined = decode_states(raw)
        result, failures = self._step(states, positioned)
        # The stamp names the encoder whose index made each list: the worker's, or the user's variant's.
        return Computed(
            result=result,
            states={user_id: encode_state(state) for user_id, state in result.states.items()},
            lists={user_id: recommendation_value(user_id, items, result.triggers[user_id].event_id,
                                                 f"{self.model_version}+{result.encoders[user_id]}",
                                                 result.variants[user_id], len(result.states[user_id].shown))
                   for user_id, items in result.recommendations.items()},
            quarantined=quarantined,
            failures=failures,
        )

    def _step(
        self, states: dict[str, UserState | None], positioned: list[Positioned]
    ) -> tuple[StepResult, list[tuple[Positioned, Exception]]]:
        """The core step over the batch, retried; then event by event, keeping only the events that
        fail on their own out. If every event fails alone, the fault is not theirs: raise."""
        for attempt in range(STEP_ATTEMPTS):
            try:
                return self.recommender.step(states, positioned), []
            except Exception as exc:
                metrics.STEP_RETRIES.inc()
                log.warning("step failed on a batch of %d events (try %d of %d): %s: %s",
                            len(positioned), attempt + 1, STEP_ATTEMPTS, type(exc).__name__, exc)
                time.sleep(0.05 * (attempt + 1))  # the models thread pauses; the loop goes on
        result, failures = step_each(self.recommender, states, positioned)
        if len(failures) == len(positioned):
            raise BatchFailed(f"all {len(positioned)} events of a batch failed on their own; "
                              f"first: {type(failures[0][1]).__name__}: {failures[0][1]}") from failures[0][1]
        return result, failures

    def _dead_letter_failures(
        self, computed: Computed, partition_of: dict[str, int], positioned: list[Positioned], origins: list[EventT]
    ) -> None:
        """Unreadable stored states (`state_unreadable`: the user started afresh) and events that failed
        on their own (`processing_failed`) go to the dead-letter topic, through the batch output."""
        for user_id, value, exc in computed.quarantined:
            error = InvalidMessage(STATE_UNREADABLE, str(exc)[:500])
            self.dead_letters.send(error, user_id.encode(), value, self.users.changelog, partition_of[user_id], -1)
            metrics.STATES_QUARANTINED.inc()
            log.warning("user %r: stored state unreadable (%s); quarantined to the dead-letter topic, "
                        "starting afresh", user_id, exc)
        origin_of = {id(pos): fe for pos, fe in zip(positioned, origins)}
        for pos, exc in computed.failures:
            msg = origin_of[id(pos)].message
            error = InvalidMessage(PROCESSING_FAILED, f"{type(exc).__name__}: {exc}"[:500])
            self.dead_letters.send(error, msg.key, origin_of[id(pos)].value, msg.topic, msg.partition, msg.offset)

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

    async def report_lag(self, end_offsets: Callable[..., Awaitable[Mapping[TP, int]]], owned: set[int]) -> None:
        """Consumer lag per partition: the log's end offset minus the next offset to apply.

        End offsets are asked of the broker: the high watermark of the last fetch goes stale
        exactly when the worker is behind (it fetches only when its buffers have room). A partition
        that moved to another worker reads 0 here from then on: its lag is the new owner's to
        report, and a stale position would count it (growing) twice in the dashboard's sum.
        """
        for tp in [tp for tp in self.positions if tp.partition not in owned]:
            del self.positions[tp]
            metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(0)
        if not self.positions:
            return
        ends = await end_offsets(*self.positions)
        for tp, end in ends.items():
            metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(0, end - self.positions[tp]))

    def _route(
        self, batch: Sequence[EventT], decoded: Sequence[Event | InvalidMessage]
    ) -> tuple[list[Positioned], list[EventT]]:
        """Valid, correctly keyed events in order, each with the Faust event it came in.

        Dead letters and re-sends go through the batch output, so the commit gate waits for them.
        """
        positioned: list[Positioned] = []
        origins: list[EventT] = []
        for fe, event in zip(batch, decoded):
            msg = fe.message
            if isinstance(event, InvalidMessage):
                self.dead_letters.send(event, msg.key, fe.value, msg.topic, msg.partition, msg.offset)
                continue
            home = partition_for(event.user_id, self.partitions)
            if msg.partition != home:
                # Keyed by something else (or by another partitioner): re-send keyed by user, so all of a
                # user's events meet their state in one partition. Applied when it comes back; the
                # origin header lets the state recognise a second re-send of it after a crash.
                self.output.produce(msg.topic, event.user_id.encode(), fe.value, home,
                                    headers=[(ORIGIN_HEADER, b"%d:%d" % (msg.partition, msg.offset))])
                metrics.EVENTS_REKEYED.inc()
                continue
            positioned.append(Positioned(event, msg.offset, origin_of(msg.headers)))
            origins.append(fe)
        return positioned, origins

    def _read_raw_states(self, partition_of: dict[str, int]) -> dict[str, bytes | None]:
        """Each user's stored state bytes (None: new), read from the table in one multi-get per partition."""
        keys: dict[int, list[bytes]] = {}
        for user_id, partition in partition_of.items():
            keys.setdefault(partition, []).append(user_id.encode())
        raw = self.users.read(keys)
        return {user_id: raw[user_id.encode()] for user_id in partition_of}


@dataclass
class Computed:
    """What the models thread hands back for one batch: the step's result, ready-to-write bytes, and
    what the loop must dead-letter."""

    result: StepResult
    states: dict[str, bytes]
    lists: dict[str, bytes]
    # (user, stored bytes, why): rows that did not decode; those users started afresh.
    quarantined: list[tuple[str, bytes, StateDecodeError]]
    failures: list[tuple[Positioned, Exception]]


def decode_all(batch: Sequence[EventT], limits: Limits) -> list[Event | InvalidMessage]:
    """Each message decoded to an event, or the reason it is not one."""
    out: list[Event | InvalidMessage] = []
    for fe in batch:
        try:
            out.append(decode_event(fe.value, limits))
        except InvalidMessage as exc:
            out.append(exc)
    return out


def decode_states(raw: Mapping[str, bytes | None]) -> tuple[dict[str, UserState | None], list[tuple[str, bytes, StateDecodeError]]]:
    """Stored states by user (None: new). A row that does not decode is returned apart, for the
    dead-letter topic, and its user starts afresh: one bad row never holds up the rest of a batch."""
    states: dict[str, UserState | None] = {}
    quarantined: list[tuple[str, bytes, StateDecodeError]] = []
    for user_id, value in raw.items():
        try:
            states[user_id] = decode_state(value) if value else None
        except StateDecodeError as exc:
            assert value is not None
            quarantined.append((user_id, value, exc))
            states[user_id] = None
    return states, quarantined


def origin_of(headers: object) -> tuple[int, int] | None:
    """(partition, offset) from a re-sent event's origin header; None if absent or malformed."""
    if not headers:
        return None
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    for key, value in pairs:  # type: ignore[union-attr]
        if key == ORIGIN_HEADER and isinstance(value, bytes):
            partition, sep, offset = value.partition(b":")
            if sep and partition.isdigit() and offset.isdigit():
                return int(partition), int(offset)
    return None


def step_each(
    recommender: Recommender, states: Mapping[str, UserState | None], positioned: Sequence[Positioned],
    attempts: int = STEP_ATTEMPTS,
) -> tuple[StepResult, list[tuple[Positioned, Exception]]]:
    """The batch's step one event at a time, each on the states the ones before left; the same
    result as one step (the last list per user wins), minus the events that raised alone on each
    of `attempts` tries. Lists computed in between were never published, so every event is judged
    against the list its user had before the batch, as in one step."""
    current: dict[str, UserState | None] = dict(states)
    shown_before = {user_id: state.shown for user_id, state in states.items() if state is not None}
    merged = StepResult()
    failures: list[tuple[Positioned, Exception]] = []
    error: Exception = RuntimeError("no attempt")
    for pos in positioned:
        r = None
        for _ in range(attempts):
            try:
                r = recommender.step(current, [pos])
                break
            except Exception as exc:
                error = exc
        if r is None:
            failures.append((pos, error))
            continue
        for user_id in r.erased:
            current[user_id] = None
            shown_before.pop(user_id, None)  # after an erase the user starts afresh, with no list
            merged.states.pop(user_id, None)
            merged.recommendations.pop(user_id, None)
            merged.triggers.pop(user_id, None)
            merged.variants.pop(user_id, None)
            merged.encoders.pop(user_id, None)
            merged.erased.add(user_id)
        for user_id, state in r.states.items():
            merged.states[user_id] = state
            current[user_id] = replace(state, shown=shown_before.get(user_id, ()))
            merged.erased.discard(user_id)
        merged.recommendations.update(r.recommendations)
        merged.variants.update(r.variants)
        merged.encoders.update(r.encoders)
        merged.online += r.online
        merged.triggers.update(r.triggers)
        merged.applied += r.applied
        merged.duplicates += r.duplicates
        merged.visits += r.visits
        merged.visit_events += r.visit_events
        merged.unknown_items += r.unknown_items
    return merged, failures
