"""Publishing catalogs and event streams with confluent-kafka, as apps and the CLI do.

The murmur2 partitioner matches the Java client and Faust, so a user's events land in the
partition where their state lives.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from confluent_kafka import KafkaError, Message, Producer

from schemas.records import Event, Item
from streams.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")


class DeliveryError(RuntimeError):
    """Kafka did not accept some messages; the message says how many and the first error."""


def produce_when_room(producer: Producer, topic: str, key: bytes, value: bytes | None, **kwargs: object) -> None:
    """`producer.produce`, waiting while librdkafka's local queue is full: serving delivery reports
    is what makes room, so a burst slows the caller down instead of failing it."""
    while True:
        try:
            producer.produce(topic, key=key, value=value, **kwargs)
            return
        except BufferError:
            producer.poll(0.01)


def make_producer(settings: Settings, **overrides: str | int) -> Producer:
    conf: dict[str, str | int] = {
        **settings.confluent_config(),
        "partitioner": "murmur2_random",
        "linger.ms": 5,
        "enable.idempotence": True,
        "compression.type": "lz4",
        # Broker disconnects are normal when it stops first; errors still surface in delivery reports.
        "log.connection.close": False,
        "logger": logging.getLogger("librdkafka"),
    }
    conf.update(overrides)
    return Producer(conf)


class Publisher:
    """Produces keyed JSON values and counts delivery failures instead of losing them silently."""

    def __init__(self, producer: Producer) -> None:
        self.producer = producer
        self.delivered = 0
        self.failed = 0
        self.first_error: KafkaError | None = None

    def _on_delivery(self, err: KafkaError | None, _msg: Message) -> None:
        if err is None:
            self.delivered += 1
        else:
            self.failed += 1
            self.first_error = self.first_error or err

    def send(self, topic: str, key: str, value: bytes) -> None:
        produce_when_room(self.producer, topic, key.encode(), value, on_delivery=self._on_delivery)
        self.producer.poll(0)

    def flush(self, timeout: float = 60.0) -> None:
        left = self.producer.flush(timeout)
        if left or self.failed:
            raise DeliveryError(
                f"{self.failed + left} message(s) not delivered (first error: {self.first_error}); "
                "check that Kafka is reachable and the topics exist"
            )


def paced(items: Iterable[T], rate: float | None) -> Iterator[T]:
    """Yields at most `rate` items per second (None or 0: as fast as possible)."""
    if not rate:
        yield from items
        return
    start = time.monotonic()
    for n, item in enumerate(items):
        due = start + n / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield item


def publish_items(publisher: Publisher, topic: str, items: Iterable[Item]) -> int:
    n = 0
    for item in items:
        publisher.send(topic, item.item_id, item.model_dump_json(exclude_none=True).encode())
        n += 1
    return n


def publish_event(publisher: Publisher, topic: str, event: Event) -> None:
    """Keyed by user, so the event lands in the partition that holds the user's state."""
    publisher.send(topic, event.user_id, event.model_dump_json(exclude_none=True).encode())


def publish_events(publisher: Publisher, topic: str, events: Iterable[Event]) -> int:
    n = 0
    for event in events:
        publish_event(publisher, topic, event)
        n += 1
    return n
