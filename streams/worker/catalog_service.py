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
from models.encoder import Encoder, SentenceEncoder
from models.index import ItemIndex
from schemas.decode import InvalidMessage, Limits, decode_item
from schemas.records import Item
from streams.settings import Settings
from streams.worker import metrics
from streams.worker.full_reader import WholeTopicService
from streams.worker.model_access import ModelAccess
from streams.worker.publishing import DeadLetters

log = logging.getLogger(__name__)

ITEMS_BATCH = 256


class CatalogService(WholeTopicService):
    def __init__(
        self, settings: Settings, models: ModelAccess, dead_letters: DeadLetters, encoder: Encoder | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(settings, models, **kw)
        self._encoder = encoder
        self.dead_letters = dead_letters
        self.limits = Limits(max_bytes=max(settings.max_message_bytes, 64 * 1024))
        self.catalog: Catalog | None = None
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
        encoder = self._encoder or SentenceEncoder(
            threads=self.settings.encoder_threads, int8=self.settings.encoder_int8)
        if ItemIndex.exists(self.settings.index_dir):
            index, checkpoint = ItemIndex.load(self.settings.index_dir)
            if checkpoint.get("topic") == self.settings.topic_items:
                self._offsets = {int(p): int(o) for p, o in checkpoint.get("offsets", {}).items()}
            log.info("item index loaded from disk", extra={"items": len(index), "path": str(self.settings.index_dir)})
        else:
            index = ItemIndex(encoder.dim)
        return Catalog(index, encoder)

    async def save(self) -> None:
        """The index and the offsets it reflects, written (and fsynced) in the models thread, where
        no upsert can land while it is written.

        The offsets are taken first: an item applied before the save starts is in the index but
        maybe not in its offsets, and is applied again after a restart (an upsert of the same text
        costs no embedding); never the other way round, which would lose it."""
        if self.catalog is None or not self._dirty:
            return
        self._dirty = False
        checkpoint = {"topic": self.settings.topic_items, "offsets": {str(p): o for p, o in self._offsets.items()}}
        await self.models.run(self.catalog.index.save, self.settings.index_dir, checkpoint)

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
            if await self.reached_end(consumer, ends, fetched=bool(batches)):
                await self.save()
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
        # The index is read and written in the models thread only (streams/worker/model_access.py);
        # embedding, which needs none of it, runs beside it.
        todo = await self.models.run(self.catalog.texts_to_embed, items)
        vectors = await asyncio.get_running_loop().run_in_executor(None, self.catalog.embed, todo) if todo else {}
        update = await self.models.run(self.catalog.apply, items, vectors)
        metrics.ITEMS_EMBEDDED.inc(update.embedded)
        metrics.ITEMS_INGESTED.labels("upsert").inc(len(update.upserted))
        metrics.ITEMS_INGESTED.labels("delete").inc(len(update.deleted))
        metrics.INDEX_SIZE.set(len(self.catalog.index))
