"""The latest list of each user this worker owns, read back from the recommendations topic.

The read API answers from here. It is a plain consumer of the (compacted) recommendations topic,
outside the consumer group and outside Faust's tables: it follows the partitions the worker owns
in the events topic (lists are keyed and partitioned like events) and, on taking one over, reads
it from the start before serving it. A Faust table with the recommendations topic as changelog
did the same job, but its restore ran inside Faust's rebalance, and a worker of a new consumer
group that restored a populated topic there lost events it had fetched meanwhile. This reader
shares nothing with the event path but the broker.

Everything runs on the worker's event loop; the store is a RocksDB of its own under the worker's
folder, emptied at start (the topic is the source of truth).
"""

from __future__ import annotations

import logging
import shutil
import struct
from collections.abc import Callable
from enum import Enum
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from mode import Service
from rocksdict import BlockBasedOptions, Cache, Options, Rdict, WriteBatch

from streams.kafka_security import aiokafka_options
from streams.settings import Settings
from streams.topics import partition_for

log = logging.getLogger(__name__)

# How long a fetch may wait for new lists: the read API is at most about this much behind the topic.
FETCH_WAIT_MS = 50
_READ_BATCH = 2000


class Lookup(Enum):
    FOUND = "found"
    ABSENT = "absent"          # caught up, and the user has no list (never had one, or erased)
    NOT_OWNED = "not_owned"    # another worker owns the user's partition
    CATCHING_UP = "catching_up"  # owned, but still being read from the start


def _prefix(partition: int) -> bytes:
    return struct.pack(">H", partition)


class ListCache(Service):
    def __init__(self, settings: Settings, partitions: int, owned: Callable[[], set[int]], **kw: Any) -> None:
        """`owned`: the events partitions this worker is assigned now."""
        super().__init__(**kw)
        self.settings = settings
        self.partitions = partitions
        self._owned = owned
        self._path = settings.worker_dir / "lists"
        self._db: Rdict | None = None
        self._assigned: set[int] = set()
        self._ends: dict[int, int] = {}  # partitions still catching up -> the end they must reach
        self._consumer: AIOKafkaConsumer | None = None

    async def on_start(self) -> None:
        shutil.rmtree(self._path, ignore_errors=True)
        self._path.mkdir(parents=True, exist_ok=True)
        self._db = Rdict(str(self._path), options=self._options())

    def _options(self) -> Options:
        """Bounded like one users-table partition (settings.rocksdb_memory_mb counts it)."""
        options = Options(raw_mode=True)
        options.set_write_buffer_size(self.settings.rocksdb_write_buffer_mb * 2**20)
        options.set_max_write_buffer_number(2)
        table = BlockBasedOptions()
        table.set_block_cache(Cache(self.settings.rocksdb_block_cache_mb * 2**20))
        options.set_block_based_table_factory(table)
        return options

    async def on_stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
        if self._db is not None:
            self._db.close()
            self._db = None

    # -- reads (the read API) -------------------------------------------------------------
    def lookup(self, user_id: str) -> tuple[Lookup, bytes | None]:
        partition = partition_for(user_id, self.partitions)
        if partition not in self._assigned or self._db is None:
            return Lookup.NOT_OWNED, None
        if partition in self._ends:
            return Lookup.CATCHING_UP, None
        value = self._db.get(_prefix(partition) + user_id.encode())
        return (Lookup.ABSENT, None) if value is None else (Lookup.FOUND, value)

    def caught_up(self) -> bool:
        """Every partition the worker owns has been read to where it ended when it was taken over."""
        return self._assigned == self._owned() and not self._ends

    # -- following the topic ---------------------------------------------------------------
    @Service.task
    async def _follow(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=FETCH_WAIT_MS,
            client_id=f"{self.settings.app_id}-lists-{self.settings.worker_id}",
            **aiokafka_options(self.settings),
        )
        self._consumer = consumer
        await consumer.start()
        while not self.should_stop:
            owned = self._owned()
            if owned != self._assigned:
                await self._reassign(consumer, owned)
            if not self._assigned:
                await self.sleep(0.2)
                continue
            batches = await consumer.getmany(timeout_ms=200, max_records=_READ_BATCH)
            self._apply(batches)
            await self._check_caught_up(consumer)

    async def _reassign(self, consumer: AIOKafkaConsumer, owned: set[int]) -> None:
        """Drop the lists of partitions no longer owned; read new ones from the start; keep the
        position of the rest (aiokafka's `assign` forgets positions)."""
        topic = self.settings.topic_recommendations
        kept = self._assigned & owned
        positions = {p: await consumer.position(TopicPartition(topic, p)) for p in kept if p not in self._ends}
        for p in self._assigned - owned:
            self._drop(p)
        consumer.assign([TopicPartition(topic, p) for p in sorted(owned)])
        added = [TopicPartition(topic, p) for p in sorted(owned - set(positions))]
        for p, offset in positions.items():
            consumer.seek(TopicPartition(topic, p), offset)
        if added:
            await consumer.seek_to_beginning(*added)
            ends = await consumer.end_offsets(added)
            for tp in added:
                self._drop(tp.partition)  # a partition caught up only partly before is read again whole
                self._ends[tp.partition] = ends[tp]
        self._assigned = set(owned)
        log.info("lists followed", extra={"partitions": sorted(owned), "reading_from_start": [tp.partition for tp in added]})

    def _drop(self, partition: int) -> None:
        assert self._db is not None
        self._db.delete_range(_prefix(partition), _prefix(partition + 1))
        self._ends.pop(partition, None)

    def _apply(self, batches: dict[TopicPartition, list[Any]]) -> None:
        assert self._db is not None
        batch = WriteBatch(raw_mode=True)
        for tp, records in batches.items():
            if tp.partition not in self._assigned:
                continue
            prefix = _prefix(tp.partition)
            for record in records:
                if record.key is None:
                    continue
                if record.value is None:  # a tombstone: the user was erased
                    batch.delete(prefix + record.key)
                else:
                    batch.put(prefix + record.key, record.value)
        self._db.write(batch)

    async def _check_caught_up(self, consumer: AIOKafkaConsumer) -> None:
        """A partition is served once read up to the end it had when taken over. (A broker that
        reports the end as the start of its last batch still serves that batch whole, so reaching
        the reported end means holding all of it.)"""
        topic = self.settings.topic_recommendations
        for p, end in list(self._ends.items()):
            if await consumer.position(TopicPartition(topic, p)) >= end:
                del self._ends[p]
