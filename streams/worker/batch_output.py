"""Everything one batch writes to Kafka, through one confluent-kafka (librdkafka) producer.

Faust sends one message at a time through aiokafka, in Python: at thousands of users per second
that alone fills a core. librdkafka batches and compresses in C. Safety is kept by ordering, not
by Faust: Faust commits a source offset only after everything produced so far is acknowledged
(streams/worker/commit_gate.py), so nothing is committed whose output is not in Kafka.

`produce` never blocks the event loop. When librdkafka's local queue is full (a broker slower than
the worker), messages wait in order in `_waiting`, and `flush`, which every batch awaits before it
commits, hands them over as room appears: the batch slows down, the loop does not stop.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from streams.kafka.topics import DEAD_LETTER_MAX_BYTES
from streams.settings import Settings


class OutputError(RuntimeError):
    """Kafka refused part of a batch's output after librdkafka's retries; the worker must not go on."""


class BatchOutput:
    def __init__(self, settings: Settings, max_queued: int = 1_000_000) -> None:
        self._producer = Producer({
            **settings.confluent_config(),
            # The Java/Faust default partitioner: a user's list lands in their events partition number.
            "partitioner": "murmur2_random",
            "enable.idempotence": True,
            "linger.ms": 2,
            "compression.type": "lz4",
            "message.max.bytes": DEAD_LETTER_MAX_BYTES,
            "queue.buffering.max.messages": max_queued,
        })
        self._failed: list[KafkaError] = []
        # Messages librdkafka had no room for yet, oldest first: (topic, key, value, produce options).
        self._waiting: deque[tuple[str, bytes, bytes | None, dict[str, Any]]] = deque()

    def produce(
        self, topic: str, key: bytes, value: bytes | None, partition: int | None = None,
        on_delivered: Callable[[Message], None] | None = None, headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        def report(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                self._failed.append(err)
            elif on_delivered is not None:
                on_delivered(msg)

        kwargs: dict[str, Any] = {"on_delivery": report}
        if partition is not None:
            kwargs["partition"] = partition
        if headers:
            kwargs["headers"] = headers
        # Behind a waiting message, a new one waits too: a key's messages keep their order.
        if self._waiting or not self._try_produce(topic, key, value, kwargs):
            self._waiting.append((topic, key, value, kwargs))

    @property
    def waiting(self) -> int:
        """Messages not yet handed to librdkafka, for want of room in its queue."""
        return len(self._waiting)

    def _try_produce(self, topic: str, key: bytes, value: bytes | None, kwargs: dict[str, Any]) -> bool:
        try:
            self._producer.produce(topic, key=key, value=value, **kwargs)
        except BufferError:
            self._producer.poll(0)  # delivery reports served now free room for the next try
            return False
        return True

    async def _hand_over_waiting(self) -> None:
        while self._waiting:
            if self._try_produce(*self._waiting[0]):
                self._waiting.popleft()
            else:
                await asyncio.sleep(0.001)

    async def flush(self) -> None:
        """Wait, without blocking the event loop, until every message produced so far is acknowledged."""
        await self._hand_over_waiting()
        while self._producer.flush(0) > 0:
            await asyncio.sleep(0.0005)
        if self._failed:
            first, n = self._failed[0], len(self._failed)
            self._failed.clear()
            raise OutputError(f"{n} message(s) of a batch were not delivered (first error: {first}); "
                              "stopping so the batch is redelivered, not half-applied")

    def close(self, timeout_s: float = 10.0) -> None:
        """Hand over what waits and flush, blocking (the loop is stopping), for at most `timeout_s`.
        Nothing is lost by giving up: what was not acknowledged was not committed either."""
        deadline = time.monotonic() + timeout_s
        while self._waiting and time.monotonic() < deadline:
            if self._try_produce(*self._waiting[0]):
                self._waiting.popleft()
            else:
                self._producer.poll(0.01)
        self._producer.flush(max(0.0, deadline - time.monotonic()))
