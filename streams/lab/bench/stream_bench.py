"""The streaming figures: backlog throughput, latency at a fixed rate, item ingestion, state size and RSS.

Each runs against real worker processes and the embedded broker; what is measured is what a
downstream consumer sees (list timestamps on the recommendations topic) or what the worker exports
as metrics, never the worker's own opinion of itself.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, TopicPartition
from rocksdict import Options, Rdict

from schemas.records import Event, Item
from streams.kafka.producing import Publisher, publish_items
from streams.lab.bench import faust_floor
from streams.lab.broker import free_port
from streams.lab.measure import histogram_quantile, measured_replay
from streams.lab.reliability.backpressure import remapped, rss_mb
from streams.lab.stack import LocalStack, WorkerProcess
from streams.settings import Settings


def wide_stream(events: Sequence[Event], n: int, tag: str, events_per_user: int = 20) -> list[Event]:
    """`n` events from `events`, remapped so each synthetic user has at most `events_per_user` of them.

    A backlog of many users is the hard case: lists are coalesced per user and batch, so a few
    heavy users would flatter the throughput.
    """
    seen: dict[str, int] = {}
    out: list[Event] = []
    for e in remapped(events, copies=-(-n // len(events)), tag=tag):
        k = seen.get(e.user_id, 0)
        seen[e.user_id] = k + 1
        out.append(e.model_copy(update={"user_id": f"{e.user_id}.{k // events_per_user}"}))
        if len(out) == n:
            break
    return out


def interleaved(events: Sequence[Event], block_users: int = 2_000) -> list[Event]:
    """The same events, reordered so that consecutive events belong to different users.

    A busy site has thousands of people active at once: its event log rarely holds two events of one
    user in a row. Users are taken in blocks of `block_users` (in order of their first event) and each
    block is dealt round-robin, first events first, so a batch of up to `block_users` events holds each
    user once, each user's own order is kept, and time still moves forward block by block.
    """
    by_user: dict[str, list[Event]] = {}
    for e in events:
        by_user.setdefault(e.user_id, []).append(e)
    users = list(by_user)
    out: list[Event] = []
    for start in range(0, len(users), block_users):
        block = [by_user[u] for u in users[start : start + block_users]]
        for k in range(max(len(b) for b in block)):
            out.extend(b[k] for b in block if k < len(b))
    return out


def consecutive_same_user(events: Sequence[Event]) -> float:
    """Share of events whose predecessor in the log belongs to the same user (what a batch can coalesce)."""
    same = sum(1 for a, b in zip(events, events[1:]) if a.user_id == b.user_id)
    return same / max(1, len(events) - 1)


def broker_ceiling(settings: Settings, topic: str, count: int, timeout: float = 300) -> float:
    """Messages/s a plain confluent-kafka consumer reads `topic` from its start until `count` messages:
    what the broker could hand a worker, on the same machine, in the same run."""
    consumer = Consumer({**settings.confluent_config(), "group.id": f"ceiling-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 10})
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        read, started = 0, time.perf_counter()
        deadline = time.monotonic() + timeout
        while read < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"read {read} of {count} messages of {topic} within {timeout:.0f}s")
            read += sum(1 for m in consumer.consume(num_messages=10_000, timeout=0.5) if not m.error())
        return round(read / (time.perf_counter() - started), 1)
    finally:
        consumer.close()


class _ListClock:
    """First and last Kafka timestamp of lists on the recommendations topic, without parsing them."""

    def __init__(self, settings: Settings) -> None:
        self._consumer = Consumer({**settings.confluent_config(), "group.id": f"bench-{uuid.uuid4().hex[:8]}",
                                   "enable.auto.commit": False, "fetch.wait.max.ms": 10})
        topic = settings.topic_recommendations
        parts = self._consumer.list_topics(topic, timeout=10).topics[topic].partitions
        self._consumer.assign([TopicPartition(topic, p, OFFSET_END) for p in parts])
        self._consumer.poll(0.5)
        self.first_ms: int | None = None
        self.last_ms = 0
        self.lists = 0

    def drain(self) -> None:
        for msg in self._consumer.consume(num_messages=10_000, timeout=0.2):
            if msg.error() or msg.value() is None:
                continue
            ts = msg.timestamp()[1]
            self.first_ms = ts if self.first_ms is None else min(self.first_ms, ts)
            self.last_ms = max(self.last_ms, ts)
            self.lists += 1

    def close(self) -> None:
        self._consumer.close()


def backlog_throughput(stack: LocalStack, catalog: Sequence[Item], events: Sequence[Event], timeout: float = 1800) -> dict[str, Any]:
    """Pre-fill the events topic, then start a worker: events/s from its first list to its last.

    Done when the worker has applied every event (its events counter) and no list arrived for a second.
    """
    settings = stack.settings()
    # The worker would create the topics; the clock must be on the recommendations topic before it starts.
    stack.prefill(catalog, events, timeout=600)
    clock = _ListClock(settings)
    try:
        worker = stack.add_worker("throughput")
        deadline = time.monotonic() + timeout
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            before = clock.lists
            clock.drain()
            if clock.lists != before:
                quiet_since = time.monotonic()
            applied = _metric_or_zero(worker, "recstream_events_total")
            if applied >= len(events) and time.monotonic() - quiet_since > 1.0:
                break
        else:
            raise TimeoutError(f"the backlog of {len(events)} events was not applied within {timeout:.0f}s")
    finally:
        clock.close()
    if clock.first_ms is None:
        raise LookupError(f"no list reached {settings.topic_recommendations}; see {worker.log_path}")
    seconds = max((clock.last_ms - clock.first_ms) / 1000.0, 1e-9)
    result = {"events": len(events), "users": len({e.user_id for e in events}), "lists": clock.lists,
              "consecutive_same_user": round(consecutive_same_user(events), 3),
              "seconds": round(seconds, 2), "events_per_s": round(len(events) / seconds, 1),
              "lists_per_s": round(clock.lists / seconds, 1),
              "worker_rss_mb": round(rss_mb(worker.proc.pid), 1) if worker.proc else None,
              # How long the worker's event loop was held while it applied the backlog (bucket bounds).
              "loop_lag_p50_s": histogram_quantile(worker.metrics(), "recstream_event_loop_lag_seconds", 0.5),
              "loop_lag_p99_s": histogram_quantile(worker.metrics(), "recstream_event_loop_lag_seconds", 0.99)}
    worker.stop()
    # The ceiling in the same run: the same backlog, from the same broker, read by a plain consumer.
    result["broker_ceiling_events_per_s"] = broker_ceiling(settings, settings.topic_events, len(events))
    # And the floor of any Faust worker: the same backlog taken by a Faust agent that does nothing.
    floor = faust_floor.measure(stack.worker_env("faust-floor", free_port(), 0), settings.topic_events, len(events))
    result["faust_floor_events_per_s"] = floor["events_per_s"]
    result["faust_floor"] = floor
    return result


def _metric_or_zero(worker: WorkerProcess, name: str) -> float:
    try:
        return worker.metric(name) or 0.0
    except OSError:
        return 0.0


def latency_at_rate(settings: Settings, publisher: Publisher, events: Sequence[Event], rate: float) -> dict[str, Any]:
    """Event produced → its list consumed, at a fixed offered rate, on an already warm worker."""
    return measured_replay(settings, publisher, events, rate).as_dict()


def item_ingestion(settings: Settings, publisher: Publisher, worker: WorkerProcess, items: Sequence[Item],
                   timeout: float = 600) -> dict[str, Any]:
    """New catalog items published at once: items/s until the worker's index holds them all."""
    before = _metric_or_zero(worker, "recstream_index_items")
    started = time.monotonic()
    publish_items(publisher, settings.topic_items, items)
    publisher.flush()
    while _metric_or_zero(worker, "recstream_index_items") < before + len(items):
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{len(items)} new items were not all in the index after {timeout:.0f}s")
        time.sleep(0.05)
    seconds = time.monotonic() - started
    return {"items": len(items), "seconds": round(seconds, 2), "items_per_s": round(len(items) / seconds, 1)}


def state_size(stack: LocalStack, worker: WorkerProcess, users: int) -> dict[str, Any]:
    """Bytes per user in the users table's RocksDB files, and the worker's RSS, after `users` users.

    The worker is stopped cleanly, then each partition's database is flushed and compacted so the
    figure is the settled on-disk size (no write-ahead log, no overwritten versions).
    """
    assert worker.proc is not None
    rss = rss_mb(worker.proc.pid)
    worker.stop()
    dbs = sorted((stack.root / "data" / worker.worker_id / "faust").rglob("users-*.db"))
    if not dbs:
        raise LookupError(f"no users table under {stack.root / 'data' / worker.worker_id}")
    for path in dbs:
        db = Rdict(str(path), options=Options(raw_mode=True))  # as Faust opens them
        db.flush()
        db.compact_range(None, None)
        db.close()
    disk = sum(f.stat().st_size for path in dbs for f in path.glob("*.sst"))
    return {"users": users, "table_bytes": disk, "bytes_per_user": round(disk / users, 1), "worker_rss_mb": round(rss, 1)}
