"""Reading a whole topic on every worker, outside the consumer group, resuming from saved offsets.

The consumer group splits users between workers, but the catalog and the co-visitation log are
needed whole by each worker, so their services assign themselves every partition.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from mode import Service

from streams.kafka.security import aiokafka_options
from streams.settings import Settings
from streams.worker.model_access import ModelAccess


def reader_consumer(settings: Settings, purpose: str, **overrides: Any) -> AIOKafkaConsumer:
    """An aiokafka consumer outside the consumer group, that assigns itself partitions and commits nothing.

    Its fetches wait at most RECSTREAM_FETCH_MAX_WAIT_MS, as the events consumer's do: with aiokafka's
    500 ms default, a broker that holds a fetch for its whole wait (the embedded Tansu) delivered
    co-visits up to half a second late, so lists were computed without the last few events' pairs.
    """
    options: dict[str, Any] = {"fetch_max_wait_ms": settings.fetch_max_wait_ms, **overrides}
    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id=f"{settings.app_id}-{purpose}-{settings.worker_id}",
        **aiokafka_options(settings),
        **options,
    )


async def open_full_reader(
    settings: Settings,
    topic: str,
    purpose: str,
    saved: dict[int, int],
    stopping: Callable[[], bool],
    sleep: Callable[[float], Awaitable[None]],
) -> tuple[AIOKafkaConsumer, dict[TopicPartition, int]]:
    """A started consumer on every partition of `topic`, positioned after `saved` offsets.

    Returns the end offsets at start, so the caller can tell when it has caught up.
    """
    consumer = reader_consumer(settings, purpose)
    await consumer.start()
    partitions = consumer.partitions_for_topic(topic) or set()
    while not partitions and not stopping():
        await sleep(1.0)
        await consumer._client.force_metadata_update()  # the topic may be created after the worker
        partitions = consumer.partitions_for_topic(topic) or set()
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(tps)
    ends = await consumer.end_offsets(tps)
    for tp in tps:
        offset = saved.get(tp.partition)
        if offset is None:
            await consumer.seek_to_beginning(tp)
        else:
            # Trust the saved offset: end offsets cannot tell a new broker from an old one (the
            # embedded broker under-reports them). Should the offset not exist, the consumer's
            # "earliest" reset re-reads the new topic, which holds only new records.
            consumer.seek(tp, offset)
    return consumer, ends


async def caught_up(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    """True once every partition was read up to where it ended when reading started."""
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return False
    return True


class WholeTopicService(Service):
    """A service that reads a whole topic into local state and checkpoints it with the offsets.

    Subclasses implement `save` (write state and `self._offsets` together, the heavy part off the
    event loop); this base saves every `save_interval_s` and at shutdown. The state is one of the
    core's models, written in the models thread (streams/worker/model_access.py).
    """

    def __init__(self, settings: Settings, models: ModelAccess, **kw: Any) -> None:
        super().__init__(**kw)
        self.settings = settings
        self.models = models
        self._offsets: dict[int, int] = {}
        self._consumer: AIOKafkaConsumer | None = None
        # Set once the topic was read up to where it ended when reading started.
        self.caught_up = asyncio.Event()

    async def save(self) -> None:
        raise NotImplementedError

    @property
    def save_interval_s(self) -> float:
        return self.settings.index_save_interval_s

    async def open_reader(self, topic: str, purpose: str) -> tuple[AIOKafkaConsumer, dict[TopicPartition, int]]:
        consumer, ends = await open_full_reader(
            self.settings, topic, purpose, self._offsets, lambda: self.should_stop, self.sleep
        )
        self._consumer = consumer
        return consumer, ends

    async def reached_end(self, consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int], fetched: bool) -> bool:
        """True (once) when reading first catches up: past the end offsets *and* a fetch that found
        nothing more, since some brokers (the embedded Tansu) report end offsets short of the last record."""
        if self.caught_up.is_set() or fetched or not await caught_up(consumer, ends):
            return False
        self.caught_up.set()
        return True

    async def on_stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
        await self.save()

    @Service.task
    async def _save_periodically(self) -> None:
        while not self.should_stop:
            await self.sleep(self.save_interval_s)
            await self.save()
