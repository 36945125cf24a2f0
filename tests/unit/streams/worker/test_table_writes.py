"""BatchedTable: a batch's writes are readable at once but reach RocksDB only after their changelog
records are acknowledged, so a worker killed at any moment has a local copy that is a prefix of
its changelog (and recovery reads only what came after it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rocksdict import Options, Rdict

from streams.worker.table_writes import BatchedTable


class Output:
    """The producer, as the table sees it: records handed over, acknowledged when the test says."""

    def __init__(self) -> None:
        self.produced: list[tuple[str, bytes, bytes | None, int]] = []

    def produce(self, topic: str, key: bytes, value: bytes | None, partition: int, on_delivered: Any = None) -> None:
        self.produced.append((topic, key, value, partition))


class Data:
    def __init__(self, root: Path) -> None:
        self.dbs = {p: Rdict(str(root / f"p{p}"), Options(raw_mode=True)) for p in range(2)}
        self.persisted: dict[Any, int] = {}

    def _db_for_partition(self, partition: int) -> Rdict:
        return self.dbs[partition]

    def set_persisted_offset(self, tp: Any, offset: int) -> None:
        self.persisted[tp] = offset


class Table:
    def __init__(self, root: Path) -> None:
        self.data = Data(root)


def test_writes_reach_rocksdb_only_after_their_changelog_is_acknowledged(tmp_path: Path) -> None:
    table, output = Table(tmp_path), Output()
    users = BatchedTable(table, output, "users-changelog")  # type: ignore[arg-type]
    db0 = table.data.dbs[0]

    users.put(0, b"alice", b"v1")
    users.put(1, b"bob", b"b1")
    first = users.stage()
    assert users.read({0: [b"alice"], 1: [b"bob"]}) == {b"alice": b"v1", b"bob": b"b1"}, "readable at once"
    assert db0.get(b"alice") is None, "not on disk before its changelog is even sent"

    users.send_changelog(*first)
    assert [(k, v) for _, k, v, _ in output.produced] == [(b"alice", b"v1"), (b"bob", b"b1")]
    assert db0.get(b"alice") is None, "sent is not acknowledged"

    # A second batch changes alice again and erases bob before the first is acknowledged.
    users.put(0, b"alice", b"v2")
    users.put(1, b"bob", None)
    second = users.stage()
    assert users.read({0: [b"alice"], 1: [b"bob"]}) == {b"alice": b"v2", b"bob": None}

    users.persist_sent(users.last_sent())  # a flush acknowledged the first batch
    assert db0.get(b"alice") == b"v1" and table.data.dbs[1].get(b"bob") == b"b1"
    assert users.read({0: [b"alice"], 1: [b"bob"]}) == {b"alice": b"v2", b"bob": None}, "newer writes still win"

    flushing = users.last_sent()
    users.send_changelog(*second)  # sent while that flush was on its way: not acknowledged by it
    users.persist_sent(flushing)
    assert db0.get(b"alice") == b"v1" and table.data.dbs[1].get(b"bob") == b"b1"
    users.mark_persisted(users.last_sent())
    assert db0.get(b"alice") == b"v2" and table.data.dbs[1].get(b"bob") is None
    assert users.read({0: [b"alice", b"carol"], 1: [b"bob"]}) == {b"alice": b"v2", b"carol": None, b"bob": None}
    assert users._unpersisted == {}, "nothing is held once everything is on disk"
