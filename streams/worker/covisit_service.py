"""The co-visitation service: every worker applies every worker's co-visits to its own store.

Why a topic: co-visitation is keyed by item while events are partitioned by user, so no single
worker sees all the pairs. The worker that owns a user computes what each event adds (it has the
user's history) and publishes it to the co-visits topic; each worker reads all of that topic's
partitions outside the consumer group and applies it. Applying is commutative (forward-decayed
sums), so every worker converges to the same numbers whatever order the partitions interleave in.
Each visit carries the events partition and offset it came from, and all visits of one events
partition travel through one covisits partition in order: a visit re-published after a crash is
recognised by its offset and applied once.
The store is saved to a local RocksDB with the offsets it reflects, so a restart resumes.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import orjson
from mode import Service
from rocksdict import Rdict, WriteBatch

from models.covisitation import CoVisit, CoVisitation
from streams.settings import Settings
from streams.worker import metrics
from streams.worker.full_reader import WholeTopicService

log = logging.getLogger(__name__)

_META = b"\x00meta"
_READ_BATCH = 500


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
    def __init__(self, settings: Settings, covis: CoVisitation, **kw: Any) -> None:
        super().__init__(settings, **kw)
        self.covis = covis
        self._store: CoVisitStore | None = None
        self._dirty = False

    async def on_start(self) -> None:
        self._store = CoVisitStore(self.settings.worker_dir / "covisits")
        self._offsets = self._store.load(self.covis, self.settings.topic_covisits)
        metrics.COVIS_ITEMS.set(len(self.covis))

    @property
    def save_interval_s(self) -> float:
        return self.settings.covis_save_interval_s

    def save(self) -> None:
        if self._store is not None and self._dirty:
            self._store.save(self.covis, self.settings.topic_covisits, self._offsets)
            self._dirty = False

    async def on_stop(self) -> None:
        await super().on_stop()
        if self._store is not None:
            self._store.close()

    @Service.task
    async def _read_visits(self) -> None:
        consumer, _ends = await self.open_reader(self.settings.topic_covisits, "covisits")
        while not self.should_stop:
            batches = await consumer.getmany(timeout_ms=100, max_records=_READ_BATCH)
            for tp, records in batches.items():
                for rec in records:
                    try:
                        source, offsets, visits = decode_visits(rec.value)
                    except (ValueError, KeyError, TypeError) as exc:
                        # Only workers write this topic; a bad record is a bug, not user input.
                        log.error("skipping an unreadable co-visit record", extra={"offset": rec.offset, "error": str(exc)})
                        continue
                    applied = sum(self.covis.apply_once(v, source, o) for v, o in zip(visits, offsets))
                    metrics.COVISITS_APPLIED.inc(applied)
                    metrics.COVISITS_DUPLICATE.inc(len(visits) - applied)
                self._offsets[tp.partition] = records[-1].offset + 1
                self._dirty = True
            if batches:
                metrics.COVIS_ITEMS.set(len(self.covis))
