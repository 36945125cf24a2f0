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

from streams.batch_output import BatchOutput


# (partition, key, value); a None value deletes the key.
Written = tuple[int, bytes, bytes | None]


def table_db(table: TableT, partition: int) -> Any:
    """The rocksdict database Faust keeps for one partition of `table` (opened in raw mode)."""
    return table.data._db_for_partition(partition)  # type: ignore[attr-defined]


class BatchedTable:
    def __init__(self, table: TableT, output: BatchOutput, changelog_topic: str) -> None:
        self._table = table
        self._output = output
        self._changelog = changelog_topic
        self._pending: dict[int, dict[bytes, bytes | None]] = defaultdict(dict)
        self._delivered: dict[int, int] = {}

    def _db(self, partition: int) -> Any:
        return table_db(self._table, partition)

    def read(self, keys_by_partition: dict[int, list[bytes]]) -> dict[bytes, bytes | None]:
        """Current values (None: absent) of keys, each looked up in its own partition's database."""
        out: dict[bytes, bytes | None] = {}
        for partition, keys in keys_by_partition.items():
            out.update(zip(keys, self._db(partition).get(keys)))
        return out

    def put(self, partition: int, key: bytes, value: bytes | None) -> None:
        """Stage a write (None deletes); `write_local` applies all staged writes."""
        self._pending[partition][key] = value

    def write_local(self) -> list[Written]:
        """Apply the staged writes to RocksDB (later batches read them) and return them for
        `send_changelog`. The local copy may run ahead of the changelog: after a crash it is
        discarded and rebuilt from the changelog (streams.worker.discard_cache_after_crash)."""
        written: list[Written] = []
        for partition, writes in self._pending.items():
            batch = WriteBatch(raw_mode=True)  # Faust opens its databases in raw mode
            for key, value in writes.items():
                if value is None:
                    batch.delete(key)
                else:
                    batch.put(key, value)
                written.append((partition, key, value))
            self._db(partition).write(batch)
        self._pending.clear()
        return written

    def send_changelog(self, written: list[Written]) -> None:
        """The changelog records of writes, to the output producer (durable once it is flushed)."""
        for partition, key, value in written:
            self._output.produce(
                self._changelog, key, value, partition, on_delivered=self._record_offset
            )

    def _record_offset(self, msg: Message) -> None:
        p = msg.partition()
        self._delivered[p] = max(self._delivered.get(p, -1), msg.offset())

    def mark_persisted(self) -> None:
        """After the output is flushed: where Faust's recovery should resume reading the changelog."""
        for partition, offset in self._delivered.items():
            self._table.data.set_persisted_offset(TP(self._changelog, partition), offset)  # type: ignore[attr-defined]
        self._delivered.clear()
