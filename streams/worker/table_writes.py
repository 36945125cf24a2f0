"""Batch reads and writes of a Faust table: RocksDB multi-get and write batches, changelog by librdkafka.

Used for the users table (state). The table stays a Faust table: Faust still owns its partitions, recovers them from the changelog
on assignment and keeps standbys. Only the per-key path is replaced, because Faust's `table[key] =`
writes one key and sends one changelog message at a time. This writes the same bytes to the same
per-partition RocksDB and the same changelog partition, and records the persisted changelog offset
the way Faust does, so its recovery cannot tell the difference.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from confluent_kafka import Message
from faust.types import TP, TableT
from rocksdict import WriteBatch

from streams.worker.batch_output import BatchOutput
from streams.worker.model_access import Slicer


# (partition, key, value); a None value deletes the key.
Written = tuple[int, bytes, bytes | None]


def table_db(table: TableT, partition: int) -> Any:
    """The rocksdict database Faust keeps for one partition of `table` (opened in raw mode)."""
    return table.data._db_for_partition(partition)  # type: ignore[attr-defined]


class BatchedTable:
    """A Faust table written a batch at a time, whose RocksDB never runs ahead of its changelog.

    A batch's writes are first held in memory (later batches read them there); they reach RocksDB
    only once their changelog records are acknowledged (`persist_sent`, after a flush). So the
    table recovery Faust runs at a rebalance, which replays the changelog over RocksDB, never meets
    a local value newer than the changelog. (After a kill -9 the local copy is still rebuilt:
    streams.worker.main.discard_cache_after_crash says why.)
    """

    def __init__(self, table: TableT, output: BatchOutput, changelog_topic: str) -> None:
        self._table = table
        self._output = output
        self._changelog = changelog_topic
        self._pending: dict[int, dict[bytes, bytes | None]] = defaultdict(dict)
        # Writes not yet in RocksDB: (partition, key) -> (generation, value); the newest write wins.
        self._unpersisted: dict[tuple[int, bytes], tuple[int, bytes | None]] = {}
        # Generations whose changelog records were handed to the producer, oldest first.
        self._sent: list[tuple[int, list[Written]]] = []
        self._generation = 0
        self._delivered: dict[int, int] = {}

    @property
    def changelog(self) -> str:
        return self._changelog

    def _db(self, partition: int) -> Any:
        return table_db(self._table, partition)

    def read(self, keys_by_partition: dict[int, list[bytes]]) -> dict[bytes, bytes | None]:
        """Current values (None: absent) of keys: the newest write not yet persisted, else RocksDB."""
        out: dict[bytes, bytes | None] = {}
        for partition, keys in keys_by_partition.items():
            stored = [k for k in keys if (partition, k) not in self._unpersisted]
            if stored:
                out.update(zip(stored, self._db(partition).get(stored)))
            for key in keys:
                held = self._unpersisted.get((partition, key))
                if held is not None:
                    out[key] = held[1]
        return out

    def put(self, partition: int, key: bytes, value: bytes | None) -> None:
        """Stage a write (None deletes); `stage` makes all staged writes one generation."""
        self._pending[partition][key] = value

    def stage(self) -> tuple[int, list[Written]]:
        """The staged writes as one generation: readable at once, persisted after `send_changelog`
        and an acknowledging flush."""
        self._generation += 1
        written: list[Written] = []
        for partition, writes in self._pending.items():
            for key, value in writes.items():
                self._unpersisted[(partition, key)] = (self._generation, value)
                written.append((partition, key, value))
        self._pending.clear()
        return self._generation, written

    def send_changelog(self, generation: int, written: list[Written]) -> None:
        """The changelog records of a generation, to the output producer (durable once it is flushed)."""
        for partition, key, value in written:
            self._output.produce(
                self._changelog, key, value, partition, on_delivered=self._record_offset
            )
        self._sent.append((generation, written))

    def last_sent(self) -> int:
        """The newest generation handed to the producer: a flush begun now acknowledges it."""
        return self._sent[-1][0] if self._sent else 0

    def persist_sent(self, upto: int) -> None:
        """After a flush that began when `last_sent()` was `upto`: write the generations it
        acknowledged to RocksDB (one write batch per partition). Later ones wait for the next flush."""
        acknowledged = [(g, w) for g, w in self._sent if g <= upto]
        if not acknowledged:
            return
        batches: dict[int, Any] = {}
        for generation, written in acknowledged:
            for partition, key, value in written:
                batch = batches.get(partition)
                if batch is None:
                    batch = batches[partition] = WriteBatch(raw_mode=True)  # Faust opens its databases raw
                if value is None:
                    batch.delete(key)
                else:
                    batch.put(key, value)
                if self._unpersisted.get((partition, key), (None,))[0] == generation:
                    del self._unpersisted[(partition, key)]
        for partition, batch in batches.items():
            self._db(partition).write(batch)
        self._sent = [(g, w) for g, w in self._sent if g > upto]

    def _record_offset(self, msg: Message) -> None:
        p = msg.partition()
        self._delivered[p] = max(self._delivered.get(p, -1), msg.offset())

    def mark_persisted(self, upto: int) -> None:
        """After a flush that began at generation `upto`: its writes to RocksDB, and where Faust's
        recovery should resume reading the changelog."""
        self.persist_sent(upto)
        for partition, offset in self._delivered.items():
            self._table.data.set_persisted_offset(TP(self._changelog, partition), offset)  # type: ignore[attr-defined]
        self._delivered.clear()


async def count_rows(table: TableT) -> int:
    """Rows in the partitions of `table` this worker owns, counted a slice of the loop at a time.

    Faust's `len(table)` walks every key of every partition's RocksDB in one go, on the event loop:
    a stall that grows with the number of users, every time the gauge is set.
    A partition that moves away while it is counted still counts (its iterator keeps the database
    open): the figure is a gauge, right again at the next count.
    """
    store = table.data
    slicer = Slicer()
    rows = 0
    for db in list(store._dbs_for_actives()):  # type: ignore[attr-defined]
        for _ in store._visible_keys(db):  # type: ignore[attr-defined]
            rows += 1
            if rows % 512 == 0 and slicer.due():
                await slicer.pause()
    return rows
