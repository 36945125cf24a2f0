"""The latest list of each user this worker owns, for the read API.

The events agent writes each list here as it publishes it. A partition the worker takes over
(or owns at start) is first read from the start of the (compacted) recommendations topic, which
holds the previous owner's lists; until then the read API answers "catching up" for its users.
That catch-up skips users the agent has written since the partition arrived: the agent's list is
newer than anything the topic held before. Once caught up, a partition is not read any more, so
in steady state the cache costs one local RocksDB write per batch and nothing on the broker.

Why not a Faust table with the recommendations topic as its changelog (the first design): its
restore ran inside Faust's rebalance, and a worker of a new consumer group restoring a populated
topic there lost events it had fetched meanwhile. This reader shares nothing with the event path
but the broker.

Everything runs on the worker's event loop; the store is a RocksDB of its own under the worker's
folder, emptied at start (the topic is the source of truth).
"""

from __future__ import annotations

import logging
import shutil
import struct
from collections import defaultdict
from collections.abc import Callable, Iterable
from enum import Enum
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from mode import Service
from rocksdict import BlockBasedOptions, Cache, Options, Rdict, WriteBatch

from streams.kafka.topics import partition_for
from streams.settings import Settings
from streams.worker.full_reader import reader_consumer

log = logging.getLogger(__name__)

# A catch-up fetch waits at most this long for records.
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
        # Keys the agent wrote to a partition not yet caught up: catch-up leaves them alone.
        self._fresh: dict[int, set[bytes]] = defaultdict(set)
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

    # -- the agent's side --------------------------------------------------------------------
    def write(self, lists: Iterable[tuple[int, bytes, bytes | None]]) -> None:
        """Lists as the agent publishes them, (partition, user id, list); None erases the user's."""
        if self._db is None:
            return
        batch = WriteBatch(raw_mode=True)
        for partition, key, value in lists:
            if partition not in self._assigned or partition in self._ends:
                self._fresh[partition].add(key)
            if value is None:
                batch.delete(_prefix(partition) + key)
            else:
                batch.put(_prefix(partition) + key, value)
        self._db.write(batch)

    # -- the read API's side -----------------------------------------------------------------
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

    # -- catching up from the topic ----------------------------------------------------------
    @Service.task
    async def _catch_up(self) -> None:
        consumer = reader_consumer(self.settings, "lists", fetch_max_wait_ms=FETCH_WAIT_MS)
        self._consumer = consumer
        await consumer.start()
        while not self.should_stop:
            owned = self._owned()
            if owned != self._assigned:
                await self._reassign(consumer, owned)
            if not self._ends:
                await self.sleep(0.2)
                continue
            batches = await consumer.getmany(timeout_ms=200, max_records=_READ_BATCH)
            self._apply(batches)
            await self._check_caught_up(consumer)

    async def _reassign(self, consumer: AIOKafkaConsumer, owned: set[int]) -> None:
        """Drop the lists of partitions no longer owned; read new ones, and any not yet caught up,
        from the start (re-reading is harmless: the topic is in order and fresh keys are skipped)."""
        topic = self.settings.topic_recommendations
        for p in self._assigned - owned:
            assert self._db is not None
            self._db.delete_range(_prefix(p), _prefix(p + 1))
            self._ends.pop(p, None)
            self._fresh.pop(p, None)
        reading = sorted((owned - self._assigned) | (owned & set(self._ends)))
        tps = [TopicPartition(topic, p) for p in reading]
        consumer.assign(tps)
        if tps:
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            self._ends.update({tp.partition: ends[tp] for tp in tps})
        self._assigned = set(owned)
        log.info("list cache partitions", extra={"partitions": sorted(owned), "reading_from_start": reading})

    def _apply(self, batches: dict[TopicPartition, list[Any]]) -> None:
        assert self._db is not None
        batch = WriteBatch(raw_mode=True)
        for tp, records in batches.items():
            if tp.partition not in self._ends:
                continue
            prefix, fresh = _prefix(tp.partition), self._fresh[tp.partition]
            for record in records:
                if record.key is None or record.key in fresh:
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
        done = [p for p, end in self._ends.items() if await consumer.position(TopicPartition(topic, p)) >= end]
        for p in done:
            del self._ends[p]
            self._fresh.pop(p, None)
        if done:
            consumer.pause(*(TopicPartition(topic, p) for p in done))
