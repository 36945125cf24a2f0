"""The topic layout recstream expects, waiting for the brokers, and creating the topics with the Kafka admin API.

deploy/kafka/topics.json describes the same layout for docker-compose; a test keeps them equal.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from aiokafka.partitioner import murmur2
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from streams.settings import Settings

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
DEAD_LETTER_MAX_BYTES = 4 * 1024 * 1024


def partition_for(user_id: str, partitions: int) -> int:
    """The Java client's default partitioner (murmur2), which Faust and our producers use too."""
    return (murmur2(user_id.encode("utf-8")) & 0x7FFFFFFF) % partitions


# Header on every recommendation list: the RECSTREAM_WORKER_ID of the worker that published it.
WORKER_HEADER = "recstream-worker"
# Header on an event a worker re-sent to its user's partition: "partition:offset" where it first arrived.
ORIGIN_HEADER = "recstream-origin"


# The worker's table of user states; Faust creates its changelog topic.
USERS_TABLE = "users"


def changelog_topic(settings: Settings) -> str:
    """Faust names a table's changelog `<app id>-<table>-changelog`."""
    return f"{settings.app_id}-{USERS_TABLE}-changelog"


# The compacted topics that hold a user's data (their latest list; the users table's changelog, their
# state). An erase writes a tombstone for the user's key; on Apache Kafka the older records behind it
# are removed once compaction runs, and these settings bound when that is: every record is compacted
# within `max.compaction.lag.ms` of being written (a segment is rolled by then, and the cleaner takes
# it regardless of the dirty ratio), and the tombstone itself, which holds only the user id, goes
# `delete.retention.ms` after that. So an erased user's lists and state are gone from Kafka within a
# day, and their id within two (plus the cleaner's own delay, not measured here). README "Privacy".
ERASABLE_COMPACTION: dict[str, str] = {
    "cleanup.policy": "compact",
    "max.compaction.lag.ms": str(DAY_MS),
    "segment.ms": str(DAY_MS // 4),
    "min.cleanable.dirty.ratio": "0.1",
    "delete.retention.ms": str(DAY_MS),
}


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


def topic_specs(settings: Settings) -> list[TopicSpec]:
    p = settings.events_partitions
    return [
        TopicSpec(settings.topic_events, p, {"retention.ms": str(7 * DAY_MS)}),
        # The catalog is a compacted log keyed by item id: the latest version of each item survives.
        TopicSpec(settings.topic_items, 1, {"cleanup.policy": "compact"}),
        # Latest list per user; the same partition count as events keeps a user's input and output aligned.
        TopicSpec(settings.topic_recommendations, p, dict(ERASABLE_COMPACTION)),
        # Every worker replays this log into its co-visitation store; keep it at least as long as
        # a new worker should learn from (the co-visitation half-life is a year of event time).
        TopicSpec(settings.topic_covisits, p, {"retention.ms": str(365 * DAY_MS)}),
        # A dead letter carries its original base64-encoded: a 1 MB event needs ~1.4 MB.
        TopicSpec(settings.topic_dead_letter, 1, {"retention.ms": str(14 * DAY_MS), "max.message.bytes": str(DEAD_LETTER_MAX_BYTES)}),
    ]


def ensure_topics(admin: AdminClient, specs: list[TopicSpec], timeout: float = 15.0) -> list[str]:
    """Create missing topics; existing ones are left alone. Returns the names created."""
    existing = set(admin.list_topics(timeout=timeout).topics)
    missing = [s for s in specs if s.name not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [NewTopic(s.name, num_partitions=s.partitions, replication_factor=-1, config=s.config) for s in missing],
        request_timeout=timeout,
    )
    created = []
    for name, fut in futures.items():
        try:
            fut.result()
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != 36:  # TOPIC_ALREADY_EXISTS: another worker won the race
                raise
    log.info("created topics", extra={"topics": created})
    return created


def wait_for_kafka(settings: Settings, timeout: float | None = None) -> AdminClient:
    """Block until the brokers answer, saying so every few seconds; never crash-loop on a late broker."""
    conf = {**settings.confluent_config(), "logger": logging.getLogger("librdkafka")}
    admin = AdminClient(conf)
    deadline = None if timeout is None else time.monotonic() + timeout
    announced = False
    while True:
        try:
            admin.list_topics(timeout=5)
            if announced:
                log.info("Kafka is up", extra={"bootstrap": settings.kafka_bootstrap})
            return admin
        except KafkaException as exc:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(
                    f"Kafka at {settings.kafka_bootstrap} did not answer: start it (`recstream broker` for a "
                    "local one) or set RECSTREAM_KAFKA_BOOTSTRAP"
                ) from exc
            log.warning(
                "waiting for Kafka (start it, or set RECSTREAM_KAFKA_BOOTSTRAP)",
                extra={"bootstrap": settings.kafka_bootstrap, "error": str(exc.args[0])},
            )
            announced = True
            time.sleep(2)
