"""Reading the recommendations topic from outside, as a downstream app would.

Used by `recstream recs`, the replay measurement and the integration tests, so all of them see
exactly what a subscriber sees.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, TopicPartition

from streams.kafka.topics import WORKER_HEADER, partition_for
from streams.settings import Settings


@dataclass(frozen=True)
class Seen:
    user_id: str
    value: dict[str, Any]
    kafka_ts_ms: int
    received_at: float
    partition: int = -1
    # The worker that published the list (its RECSTREAM_WORKER_ID), from the recstream-worker header.
    worker: str | None = None


def consumer_for(settings: Settings) -> Consumer:
    return Consumer(
        {
            **settings.confluent_config(),
            "group.id": f"recstream-watch-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            # librdkafka's 500 ms default is added to every list read when the broker holds fetches
            # for their whole wait (the embedded one does): a reader measuring latency cannot afford it.
            "fetch.wait.max.ms": 10,
        }
    )


def assign_topic(consumer: Consumer, topic: str, start: int, user_id: str | None = None) -> None:
    """Every partition of `topic` from `start`, or only the one `user_id` is keyed to."""
    meta = consumer.list_topics(topic, timeout=10).topics[topic]
    if meta.error is not None:
        raise LookupError(f"topic {topic} is not available ({meta.error}): has a worker run against this broker with these settings?")
    partitions = sorted(meta.partitions)
    if user_id is not None:
        partitions = [partition_for(user_id, len(partitions))]
    consumer.assign([TopicPartition(topic, p, start) for p in partitions])


def _worker_of(msg: Any) -> str | None:
    """The worker that published a list (its recstream-worker header)."""
    return next((v.decode() for k, v in msg.headers() or () if k == WORKER_HEADER), None)


def _decode(msg: Any) -> Seen | None:
    if msg is None or msg.error() or msg.value() is None:
        return None
    value = json.loads(msg.value())
    return Seen(value["user_id"], value, msg.timestamp()[1], time.time(), msg.partition(), _worker_of(msg))


class RecommendationWatcher:
    """Collects every list published from now on (or from the beginning), in a background thread."""

    def __init__(self, settings: Settings, from_beginning: bool = False, keep_lists: bool = True) -> None:
        self._consumer = consumer_for(settings)
        assign_topic(self._consumer, settings.topic_recommendations, OFFSET_BEGINNING if from_beginning else OFFSET_END)
        self.seen: list[Seen] = []
        self.latest: dict[str, Seen] = {}
        # user -> when their tombstone (an erase) arrived, epoch s.
        self.erased: dict[str, float] = {}
        # worker id (the list header) -> when its newest list arrived, epoch s.
        self.last_from_worker: dict[str, float] = {}
        # False: only note which worker published when (a long soak would hold millions of lists).
        self._keep_lists = keep_lists
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        # Make sure the end offsets are fixed before anyone produces.
        self._consumer.poll(0.5)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for msg in self._consumer.consume(num_messages=500, timeout=0.2):
                if not msg.error() and msg.value() is None and msg.key() is not None:
                    with self._lock:
                        self.erased[msg.key().decode("utf-8", "replace")] = time.time()
                    continue
                if not self._keep_lists:
                    worker = _worker_of(msg)
                    if worker is not None:
                        self.last_from_worker[worker] = time.time()
                    continue
                seen = _decode(msg)
                if seen is None:
                    continue
                with self._lock:
                    self.seen.append(seen)
                    self.latest[seen.user_id] = seen
                    if seen.worker is not None:
                        self.last_from_worker[seen.worker] = seen.received_at

    def wait_for(self, user_id: str, timeout: float = 10.0, after: float = 0.0) -> Seen | None:
        """The newest list for `user_id` received after `after` (epoch s), or None on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                seen = self.latest.get(user_id)
            if seen is not None and seen.received_at >= after:
                return seen
            time.sleep(0.01)
        return None

    def wait_for_tombstone(self, user_id: str, timeout: float = 10.0) -> float | None:
        """When `user_id`'s tombstone arrived (epoch s), or None on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if user_id in self.erased:
                    return self.erased[user_id]
            time.sleep(0.01)
        return None

    def wait_for_any_after(self, after: float, timeout: float = 10.0) -> bool:
        """True once any list arrives after `after` (epoch s): the pipeline is flowing again."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self.seen and self.seen[-1].received_at >= after:
                    return True
            time.sleep(0.05)
        return False

    def wait_for_trigger(self, event_id: str, timeout: float = 10.0) -> Seen | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for seen in reversed(self.seen):
                    if seen.value.get("trigger_event_id") == event_id:
                        return seen
            time.sleep(0.02)
        return None

    def snapshot(self) -> list[Seen]:
        with self._lock:
            return list(self.seen)

    def snapshot_since(self, start: int) -> list[Seen]:
        """The lists seen after the first `start` (for a caller that polls: no copy of the whole history)."""
        with self._lock:
            return self.seen[start:]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._consumer.close()

    def __enter__(self) -> RecommendationWatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_topic(settings: Settings, topic: str, count: int, timeout: float = 10.0) -> list[Any]:
    """Up to `count` messages from the start of `topic` (all partitions, no consumer group: no join wait)."""
    consumer = consumer_for(settings)
    try:
        assign_topic(consumer, topic, OFFSET_BEGINNING)
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(out) < count and time.monotonic() < deadline:
            out.extend(m for m in consumer.consume(num_messages=count, timeout=0.2) if not m.error())
        return out
    finally:
        consumer.close()


def scan_to_end(
    settings: Settings, topic: str, timeout: float = 30.0, idle: float = 1.5, stall: float = 10.0
) -> Iterator[Any]:
    """Every message of `topic` from the beginning until it is read to its end.

    "The end" is the high watermark *and* `idle` seconds without a new message: some brokers (the
    embedded Tansu among them) report a watermark short of the last record when records were
    produced in batches, so the watermark alone would stop early. A partition whose watermark is
    never reached (the same broker can leave it past its last readable record, seen after it was
    frozen) ends the read once nothing has arrived for `stall` seconds. No consumer group (no join
    wait, no committed offsets): it reads beside running workers.
    """
    consumer = consumer_for(settings)
    try:
        assign_topic(consumer, topic, OFFSET_BEGINNING)
        ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=timeout)[1] for tp in consumer.assignment()}
        reached = {p: 0 for p in ends}
        deadline = time.monotonic() + timeout
        last_message = time.monotonic()
        while any(reached[p] < ends[p] for p in ends) or time.monotonic() - last_message < idle:
            if time.monotonic() - last_message > stall:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end within {timeout:.0f}s; is the broker up?")
            for msg in consumer.consume(num_messages=1000, timeout=0.2):
                if msg.error():
                    continue
                last_message = time.monotonic()
                reached[msg.partition()] = max(reached[msg.partition()], msg.offset() + 1)
                yield msg
    finally:
        consumer.close()


def latest_for_user(settings: Settings, user_id: str, timeout: float = 10.0) -> dict[str, Any] | None:
    """Scan the recommendations topic to its end and return the user's newest list."""
    found: dict[str, Any] | None = None
    key = user_id.encode()
    for msg in scan_to_end(settings, settings.topic_recommendations, timeout):
        if msg.key() == key:
            found = json.loads(msg.value()) if msg.value() is not None else None  # None: erased
    return found
