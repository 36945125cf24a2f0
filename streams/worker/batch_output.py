"""Everything one batch writes to Kafka, through one confluent-kafka (librdkafka) producer.

Faust sends one message at a time through aiokafka, in Python: at thousands of users per second
that alone fills a core. librdkafka batches and compresses in C. Safety is kept by ordering, not
by Faust: Faust commits a source offset only after everything produced so far is acknowledged
(streams/worker/commit_gate.py), so nothing is committed whose output is not in Kafka.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from confluent_kafka import KafkaError, Message, Producer

from streams.kafka.producing import produce_when_room
from streams.kafka.topics import DEAD_LETTER_MAX_BYTES
from streams.settings import Settings


class OutputError(RuntimeError):
    """Kafka refused part of a batch's output after librdkafka's retries; the worker must not go on."""


class BatchOutput:
    def __init__(self, settings: Settings) -> None:
        self._producer = Producer({
            **settings.confluent_config(),
            # The Java/Faust default partitioner: a user's list lands in their events partition number.
            "partitioner": "murmur2_random",
            "enable.idempotence": True,
            "linger.ms": 2,
            "compression.type": "lz4",
            "message.max.bytes": DEAD_LETTER_MAX_BYTES,
            "queue.buffering.max.messages": 1_000_000,
        })
        self._failed: list[KafkaError] = []

    def produce(
        self, topic: str, key: bytes, value: bytes | None, partition: int | None = None,
        on_delivered: Callable[[Message], None] | None = None, headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        def report(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                self._failed.append(err)
            elif on_delivered is not None:
                on_delivered(msg)

        kwargs: dict[str, object] = {} if partition is None else {"partition": partition}
        if headers:
            kwargs["headers"] = headers
        produce_when_room(self._producer, topic, key, value, on_delivery=report, **kwargs)

    async def flush(self) -> None:
        """Wait, without blocking the event loop, until every message produced so far is acknowledged."""
        while self._producer.flush(0) > 0:
            await asyncio.sleep(0.0005)
        if self._failed:
            first, n = self._failed[0], len(self._failed)
            self._failed.clear()
            raise OutputError(f"{n} message(s) of a batch were not delivered (first error: {first}); "
                              "stopping so the batch is redelivered, not half-applied")

    def close(self) -> None:
        self._producer.flush(10)
