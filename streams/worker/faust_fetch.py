"""How long a worker's fetch may wait at the broker for new events: Faust hardcodes 1.5 s.

Apache Kafka answers a fetch as soon as data arrives, so the wait only bounds idle polling there.
Brokers that hold a fetch for its whole wait (the embedded Tansu does) add that wait to the
latency of the first event after a quiet spell. A short wait costs an idle worker a few more
fetch requests per second and nothing else.
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

_original = AIOKafkaConsumerThread._create_worker_consumer


def set_fetch_max_wait(ms: int) -> None:
    """Make every Faust worker consumer created from now on wait at most `ms` per fetch."""

    def create(self: AIOKafkaConsumerThread, transport: Any) -> Any:
        consumer = _original(self, transport)
        consumer._fetch_max_wait_ms = ms  # read when the consumer starts and builds its fetcher
        return consumer

    AIOKafkaConsumerThread._create_worker_consumer = create  # type: ignore[method-assign]
