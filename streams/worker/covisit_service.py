"""The co-visitation service: every worker applies every worker's co-visits to its own store.

Why a topic: co-visitation is keyed by item while events are partitioned by user, so no single
worker sees all the pairs. The worker that owns a user computes what each event adds (it has the
user's history) and publishes it to the co-visits topic; each worker reads all of that topic's
partitions outside the consumer group and applies it. Applying is commutative (forward-decayed
sums), so workers agree whatever order the partitions interleave in, up to the pruning of long
rows (docs/architecture.md says how far, as measured).
Each visit carries the events partition and offset it came from, and all visits of one events
partition travel through one covisits partition in order: a visit re-published after a crash is
recognised by its offset and applied once.
The store is saved to a local RocksDB with the offsets it reflects, so a restart resumes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

import orjson
from mode import Service
from rocksdict import Rdict, WriteBatch

from models.covisitation import CoVisit, CoVisitation
from streams.settings import Settings
from streams.worker import metrics
from streams.worker.collector import freeze_survivors
from streams.worker.full_reader import WholeTopicService
from streams.worker.model_access import ModelAccess

log = logging.getLogger(__name__)

_META = b"\x00meta"
_READ_BATCH = 500
# How long one turn of applying co-visits may hold the models thread (a record at least).
APPLY_TURN_S = 0.02


def encode_visits(source: int, offsets: list[int], visits: list[CoVisit]) -> bytes:
    """One message per events partition and batch: the visits and the event offsets they came from."""
    doc = {"source": source, "offsets": offsets, "visits": [v.to_json() for v in visits]}
    return orjson.dumps(doc)


def decode_visits(value: bytes) -> tuple[int, list[int], list[CoVisit]]:
    doc = orjson.loads(value)
    visits = [CoVisit.from_json(v) for v in doc["visits"]]
    offsets = [int(o) for o in doc["offsets"]]
    if len(offsets) != len(visits):
        raise ValueError(f"{len(visits)} visits but {len(offsets)} offsets")
    return int(doc["source"]), offsets, visits


class CoVisitStore:
    """The store's RocksDB copy: one record per item plus t0 and the topic offsets it reflects."""

    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self._db = Rdict(str(path))

    def load(self, covis: CoVisitation, topic: str) -> dict[int, int]:
        raw = self._db.get(_META)
        if raw is None:
            return {}
        meta = json.loads(raw)
        if meta.get("topic") != topic:
            return {}
        records = ((k.decode(), json.loads(v)) for k, v in self._db.items() if k != _META)
        upto = {int(p): int(o) for p, o in meta.get("applied_upto", {}).items()}
        covis.restore(meta.get("t0_s"), records, upto)
        return {int(p): int(o) for p, o in meta.get("offsets", {}).items()}

    def save(self, covis: CoVisitation, topic: str, offsets: dict[int, int]) -> None:
        batch = WriteBatch()
        for item, record in covis.take_dirty().items():
            batch.put(item.encode(), orjson.dumps(record))
        meta = {
            "topic": topic,
            "t0_s": covis.t0_s,
            "offsets": {str(p): o for p, o in offsets.items()},
            "applied_upto": {str(p): o for p, o in covis.applied_upto.items()},
        }
        batch.put(_META, json.dumps(meta).encode())
        self._db.write(batch)  # records and offsets land together, or not at all

    def close(self) -> None:
        self._db.close()


class CoVisitService(WholeTopicService):
    """Applies the co-visits topic to `covis` in the models thread, and saves it in another.

    Applying a fetch (up to 500 records, ~0.4 ms each) on the loop held it for a fifth of a second;
    saving the dirty rows took about a second. Saving only reads `covis`, so it runs in a thread of
    the default executor beside the step, and `_store_lock` keeps applying out until the rows and
    the offsets they reflect are written.
    """

    def __init__(self, settings: Settings, models: ModelAccess, covis: CoVisitation, **kw: Any) -> None:
        super().__init__(settings, models, **kw)
        self.covis = covis
        self._store: CoVisitStore | None = None
        self._store_lock = asyncio.Lock()
        self._writing: asyncio.Future[None] | None = None  # the latest save's write, in its thread
        self._dirty = False

    async def on_start(self) -> None:
        self._store = CoVisitStore(self.settings.worker_dir / "covisits")
        self._offsets = await asyncio.get_running_loop().run_in_executor(
            None, self._store.load, self.covis, self.settings.topic_covisits)
        metrics.COVIS_ITEMS.set(len(self.covis))

    @property
    def save_interval_s(self) -> float:
        return self.settings.covis_save_interval_s

    async def save(self) -> None:
        async with self._store_lock:
            if self._store is None or not self._dirty:
                return
            self._dirty = False
            offsets = dict(self._offsets)
            self._writing = asyncio.get_running_loop().run_in_executor(
                None, self._store.save, self.covis, self.settings.topic_covisits, offsets)
            await self._writing

    async def on_stop(self) -> None:
        """Save, then close the store once no write is running: closing it under a periodic save's
        write (its task cancelled, or still in its thread) crashed the worker and lost that save."""
        await super().on_stop()
        async with self._store_lock:
            if self._writing is not None:
                await asyncio.wait({self._writing})
            if self._store is not None:
                self._store.close()
                self._store = None

    @Service.task
    async def _read_visits(self) -> None:
        consumer, ends = await self.open_reader(self.settings.topic_covisits, "covisits")
        started = time.monotonic()
        while not self.should_stop:
            batches = await consumer.getmany(timeout_ms=100, max_records=_READ_BATCH)
            for tp, records in batches.items():
                await self._apply(tp.partition, records)
            if batches:
                metrics.COVIS_ITEMS.set(len(self.covis))
                if not self.caught_up.is_set():
                    # A replay makes rows by the thousand, and each full collection walked all of them
                    # again (30-40 ms of the loop): they stay for good, so collections may skip them.
                    freeze_survivors("co-visits replayed so far", collect=False, quiet=True)
            if await self.reached_end(consumer, ends, fetched=bool(batches)):
                log.info("co-visitation caught up", extra={"items": len(self.covis),
                                                           "seconds": round(time.monotonic() - started, 1)})

    async def _apply(self, partition: int, records: list[Any]) -> None:
        """Apply `records` of one partition, in order, in the models thread: a turn of about
        `APPLY_TURN_S` at a time, so that batches' steps get their turns during a long replay."""
        at = 0
        while at < len(records):
            async with self._store_lock:  # a save writes rows and offsets that agree
                at = await self.models.run(self._apply_some, records, at)
                self._offsets[partition] = records[at - 1].offset + 1
                self._dirty = True

    def _apply_some(self, records: list[Any], start: int) -> int:
        """Records from `start` on until a turn is used up (one at least); returns where it stopped."""
        began = time.perf_counter()
        at = start
        while at < len(records) and (at == start or time.perf_counter() - began < APPLY_TURN_S):
            visits = self._decode(records[at])
            applied = sum(self.covis.apply_once(visit, source, offset) for visit, source, offset in visits)
            metrics.COVISITS_APPLIED.inc(applied)
            metrics.COVISITS_DUPLICATE.inc(len(visits) - applied)
            at += 1
        return at

    @staticmethod
    def _decode(rec: Any) -> list[tuple[CoVisit, int, int]]:
        try:
            source, offsets, visits = decode_visits(rec.value)
        except (ValueError, KeyError, TypeError) as exc:
            # Only workers write this topic; a bad record is a bug, not user input.
            log.error("skipping an unreadable co-visit record", extra={"offset": rec.offset, "error": str(exc)})
            return []
        return [(visit, source, offset) for visit, offset in zip(visits, offsets)]
