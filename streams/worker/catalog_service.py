"""The items agent: every worker reads the whole items topic into its own index.

It is not a consumer-group agent on purpose: the consumer group splits users between workers,
but every worker needs the whole catalog. So it assigns itself every partition of the items topic,
resumes from the offsets saved with the index (a restart re-embeds nothing), and encodes off the
event loop so events keep flowing while a catalog loads.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from mode import Service

from models.catalog import Catalog
from models.encoder import SentenceEncoder
from models.index import ItemIndex
from schemas.decode import InvalidMessage, Limits, decode_item
from schemas.records import Item
from streams.settings import Settings
from streams.worker import metrics
from streams.worker.full_reader import WholeTopicService, caught_up
from streams.worker.publishing import DeadLetters

log = logging.getLogger(__name__)

ITEMS_BATCH = 256


class CatalogService(WholeTopicService):
    def __init__(self, settings: Settings, dead_letters: DeadLetters, **kw: Any) -> None:
        super().__init__(settings, **kw)
        self.dead_letters = dead_letters
        self.limits = Limits(max_bytes=max(settings.max_message_bytes, 64 * 1024))
        self.catalog: Catalog | None = None
        self.loaded = asyncio.Event()
        self._dirty = False

    @property
    def index(self) -> ItemIndex:
        assert self.catalog is not None, "catalog not loaded yet"
        return self.catalog.index

    async def on_start(self) -> None:
        loop = asyncio.get_running_loop()
        self.catalog = await loop.run_in_executor(None, self._load)
        metrics.INDEX_SIZE.set(len(self.catalog.index))

    def _load(self) -> Catalog:
        encoder = SentenceEncoder(threads=self.settings.encoder_threads, int8=self.settings.encoder_int8)
        if ItemIndex.exists(self.settings.index_dir):
            index, checkpoint = ItemIndex.load(self.settings.index_dir)
            if checkpoint.get("topic") == self.settings.topic_items:
                self._offsets = {int(p): int(o) for p, o in checkpoint.get("offsets", {}).items()}
            log.info("item index loaded from disk", extra={"items": len(index), "path": str(self.settings.index_dir)})
        else:
            index = ItemIndex(encoder.dim)
        return Catalog(index, encoder)

    def save(self) -> None:
        if self.catalog is None or not self._dirty:
            return
        checkpoint = {"topic": self.settings.topic_items, "offsets": {str(p): o for p, o in self._offsets.items()}}
        self.catalog.index.save(self.settings.index_dir, checkpoint)
        self._dirty = False

    @Service.task
    async def _read_items(self) -> None:
        consumer, ends = await self.open_reader(self.settings.topic_items, "items")
        started = time.monotonic()
        while not self.should_stop:
            batches = await consumer.getmany(timeout_ms=200, max_records=ITEMS_BATCH)
            for tp, records in batches.items():
                await self._apply(records)
                self._offsets[tp.partition] = records[-1].offset + 1
                self._dirty = True
            # Caught up = past the end offsets *and* a fetch that found nothing more: some brokers
            # (the embedded Tansu) report end offsets short of the last record.
            if not self.loaded.is_set() and not batches and await caught_up(consumer, ends):
                self.loaded.set()
                self.save()
                log.info("catalog caught up", extra={"items": len(self.index), "seconds": round(time.monotonic() - started, 1)})

    async def _apply(self, records: list[Any]) -> None:
        assert self.catalog is not None
        items: list[Item] = []
        for rec in records:
            try:
                items.append(decode_item(rec.value, self.limits))
            except InvalidMessage as exc:
                self.dead_letters.send(exc, rec.key, rec.value, rec.topic, rec.partition, rec.offset)
        if not items:
            return
        todo = self.catalog.texts_to_embed(items)
        vectors = await asyncio.get_running_loop().run_in_executor(None, self.catalog.embed, todo) if todo else {}
        update = self.catalog.apply(items, vectors)
        metrics.ITEMS_EMBEDDED.inc(update.embedded)
        metrics.ITEMS_INGESTED.labels("upsert").inc(len(update.upserted))
        metrics.ITEMS_INGESTED.labels("delete").inc(len(update.deleted))
        metrics.INDEX_SIZE.set(len(self.catalog.index))
