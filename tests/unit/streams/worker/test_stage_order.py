"""A batch's output (changelog records, lists) goes out after the previous batch's, even while a
commit drains the stages in flight.

Found by the reliability tests: a drain took the running stages off the queue before they were
done, so the next batch's stage found the queue empty, did not wait for the one before it, and
sent its changelog record for a user ahead of the older batch's. RocksDB and the changelog then
ended with the older state, and the newer batch's event was lost (one event in ~60,000 on a
fresh worker reading a backlog).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from streams.worker.events_agent import EventsProcessor
from streams.worker.table_writes import BatchedTable

from test_table_writes import Output, Table


class SlowFirstFlush(Output):
    """The producer's flush: the first one waits until the test lets it go, later ones return at once."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.flushes = 0

    async def flush(self) -> None:
        self.flushes += 1
        if self.flushes == 1:
            await self.release.wait()


def processor(users: BatchedTable, output: Output) -> EventsProcessor:
    p = EventsProcessor.__new__(EventsProcessor)  # only the output path is exercised here
    p.__init__(recommender=None, models=None, users=users, recommendations_topic="recs", list_headers=[],  # type: ignore[arg-type]
               write_lists=lambda lists: None, output=output, covisits_topic="covisits", dead_letters=None,  # type: ignore[arg-type]
               partitions=1, limits=None, model_version="test")  # type: ignore[arg-type]
    return p


def test_a_drain_never_lets_a_newer_batch_overtake_an_older_one(tmp_path: Path) -> None:
    async def scenario() -> tuple[list[Any], Any, Any]:
        table, output = Table(tmp_path), SlowFirstFlush()
        users = BatchedTable(table, output, "users-changelog")  # type: ignore[arg-type]
        p = processor(users, output)

        users.put(0, b"alice", b"state after event 1")
        await p._stage(users.stage(), [], [])          # batch 1: its stage waits on the slow flush
        draining = asyncio.ensure_future(p.drain())     # a commit begins while it is on its way
        await asyncio.sleep(0)
        users.put(0, b"alice", b"state after event 2")
        await p._stage(users.stage(), [], [])          # batch 2 arrives during the drain
        await asyncio.sleep(0.01)
        output.release.set()
        await draining
        await p.drain()
        changelog = [v for topic, k, v, _ in output.produced if topic == "users-changelog" and k == b"alice"]
        return changelog, table.data.dbs[0].get(b"alice"), users.read({0: [b"alice"]})[b"alice"]

    changelog, on_disk, read = asyncio.run(scenario())
    assert changelog == [b"state after event 1", b"state after event 2"], "changelog records in batch order"
    assert on_disk == b"state after event 2" and read == b"state after event 2", "the newest state survives"
