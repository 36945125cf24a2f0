"""The items agent: every worker reads the whole items topic into its own index.

It is not a consumer-group agent on purpose: the consumer group splits users between workers,
but every worker needs the whole catalog. So it assigns itself every partition of the items topic,
resumes from the offsets saved with the index (a restart re-embeds nothing, unless the encoder
version changed), and encodes off the event loop so events keep flowing while a catalog loads.

It also rolls out new encoder versions: when the folder RECSTREAM_ENCODER_PATH names holds another
version than the one in use, the whole catalog is embedded again into a new index while the old one
keeps serving, the items that arrive meanwhile are applied to both, and the new index replaces
the old in one step of the models thread (docs/encoder.md).

And it keeps one more catalog per experiment variant that names its own encoder: the same items,
embedded by that encoder, built the same way once the catalog has caught up, kept in step with
every later change and saved beside the worker's own index (docs/experiments.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from mode import Service

from models.catalog import Catalog, embedded_again
from models.encoder import Encoder, SentenceEncoder, encoder_name
from models.index import ItemIndex, ItemMeta
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
        # Items applied while a new encoder embeds the catalog, by what is being built ("" for the
        # worker's own switch, else a variant's name): applied to the new index before it is used.
        self._build_logs: dict[str, list[Item]] = {}
        self._failed_version: str | None = None
        # Called in the models thread with the new catalog, the moment it replaces the old one.
        self.switch_listeners: list[Callable[[Catalog], None]] = []
        # The catalogs of variants with an encoder of their own, once built or loaded, and who is
        # told (in the models thread) when one is ready.
        self.variant_catalogs: dict[str, Catalog] = {}
        self.variant_listeners: list[Callable[[str, Catalog], None]] = []

    @property
    def index(self) -> ItemIndex:
        assert self.catalog is not None, "catalog not loaded yet"
        return self.catalog.index

    async def on_start(self) -> None:
        loop = asyncio.get_running_loop()
        self.catalog = await loop.run_in_executor(None, self._load)
        metrics.INDEX_SIZE.set(len(self.catalog.index))

    def _new_encoder(self, path: Path | None) -> SentenceEncoder:
        return SentenceEncoder(path, threads=self.settings.encoder_threads, int8=self.settings.encoder_int8)

    def _load(self) -> Catalog:
        encoder = self._encoder or self._new_encoder(self.settings.encoder_path)
        metrics.ENCODER.labels(encoder.name).set(1)
        index = None
        if ItemIndex.exists(self.settings.index_dir):
            saved, checkpoint = ItemIndex.load(self.settings.index_dir)
            if checkpoint.get("encoder") != encoder.name:
                # Vectors of two encoders must not mix: the catalog is read and embedded again.
                log.warning(f"the saved item index was embedded by {checkpoint.get('encoder', 'an unnamed encoder')}, "
                            f"this worker uses {encoder.name}: embedding the catalog again")
            else:
                index = saved
                if checkpoint.get("topic") == self.settings.topic_items:
                    self._offsets = {int(p): int(o) for p, o in checkpoint.get("offsets", {}).items()}
                log.info("item index loaded from disk", extra={"items": len(index), "path": str(self.settings.index_dir)})
        if index is not None:
            self._load_variant_catalogs()
        return Catalog(index or ItemIndex(encoder.dim), encoder)

    def _variant_dir(self, variant: str) -> Path:
        """Beside the worker's own index (inside it, its atomic save would wipe it)."""
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in variant)
        return self.settings.index_dir.with_name(f"{self.settings.index_dir.name}.variant-{safe}")

    def _load_variant_catalogs(self) -> None:
        """The variants' saved indexes that were saved with the worker's own (same offsets) by the same
        encoder; any other is built again once the catalog has caught up."""
        for name, path in self.settings.experiment.encoders.items():
            folder = self._variant_dir(name)
            if not ItemIndex.exists(folder):
                continue
            saved, checkpoint = ItemIndex.load(folder)
            offsets = {int(p): int(o) for p, o in checkpoint.get("offsets", {}).items()}
            # The name from the folder's description: the model itself is loaded only for an index that is kept.
            if checkpoint.get("encoder") != encoder_name(self.settings.encoder_int8, path) or offsets != self._offsets:
                log.info(f"the saved index of variant {name!r} is not in step with the worker's: building it again")
                continue
            encoder = self._new_encoder(path)
            self.variant_catalogs[name] = Catalog(saved, encoder)
            metrics.ENCODER.labels(encoder.name).set(1)
            log.info(f"variant {name!r}: item index of encoder {encoder.name} loaded from disk")

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
        await self.models.run(self._save_in_models_thread, checkpoint)

    def _save_in_models_thread(self, checkpoint: dict[str, Any]) -> None:
        """Every index with the same offsets, so a restart can tell which ones are in step."""
        assert self.catalog is not None
        self.catalog.index.save(self.settings.index_dir, {**checkpoint, "encoder": self.catalog.encoder.name})
        for name, catalog in self.variant_catalogs.items():
            catalog.index.save(self._variant_dir(name), {**checkpoint, "encoder": catalog.encoder.name})

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
        # embedding, which needs none of it, runs beside it. Every catalog (the worker's and the
        # variants') gets the items in the same models-thread step, so none ranks with a stale one.
        catalogs = [self.catalog, *self.variant_catalogs.values()]
        todos = await self.models.run(lambda: [c.texts_to_embed(items) for c in catalogs])
        loop = asyncio.get_running_loop()
        vectors = [await loop.run_in_executor(None, c.embed, todo) if todo else {} for c, todo in zip(catalogs, todos)]
        update = await self.models.run(self._apply_in_models_thread, catalogs, items, vectors)
        metrics.ITEMS_EMBEDDED.inc(update.embedded)
        metrics.ITEMS_INGESTED.labels("upsert").inc(len(update.upserted))
        metrics.ITEMS_INGESTED.labels("delete").inc(len(update.deleted))
        metrics.INDEX_SIZE.set(len(self.catalog.index))

    def _apply_in_models_thread(self, embedded_by: list[Catalog], items: list[Item], vectors: list[dict[str, Any]]
                                ) -> Any:
        """Apply to every catalog in use; note the items for builds under way. A catalog that was not
        in use when the vectors were made (switched to, or built, meanwhile) embeds them itself."""
        assert self.catalog is not None
        for pending in self._build_logs.values():
            pending.extend(items)
        made = {id(c): v for c, v in zip(embedded_by, vectors)}

        def apply(catalog: Catalog) -> Any:
            if id(catalog) not in made:
                return catalog.apply(items, catalog.embed(catalog.texts_to_embed(items)))
            return catalog.apply(items, made[id(catalog)])

        for catalog in self.variant_catalogs.values():
            metrics.ITEMS_EMBEDDED.inc(apply(catalog).embedded)
        return apply(self.catalog)

    # -- rolling out a new encoder version --------------------------------------------------------
    @Service.task
    async def _watch_encoder(self) -> None:
        """Every RECSTREAM_ENCODER_CHECK_S, switch if RECSTREAM_ENCODER_PATH holds another version."""
        path, every = self.settings.encoder_path, self.settings.encoder_check_s
        if path is None or every <= 0:
            return
        await self.caught_up.wait()
        while not self.should_stop:
            await self.sleep(every)
            try:
                wanted = encoder_name(self.settings.encoder_int8, path)
            except (OSError, ValueError) as exc:
                log.warning(f"cannot read the encoder at {path}: {exc}; keeping the current one")
                continue
            if self.catalog is not None and wanted not in (self.catalog.encoder.name, self._failed_version):
                await self.switch_encoder(path, wanted)

    async def switch_encoder(self, path: Path, version: str) -> bool:
        """Embed the catalog with the encoder at `path` into a new index and switch to it.

        Lists keep coming from the old index until the new one is complete. A failure (a folder
        without a model, another vector size) keeps the old encoder and is not retried for `version`."""
        started = time.monotonic()
        log.info(f"encoder {version} found at {path}: embedding the catalog again")
        try:
            new = await self._embedded_with(path, "", self._finish_switch)
        except Exception as exc:
            self._failed_version = version
            metrics.ENCODER_SWITCH_FAILURES.inc()
            log.error(f"encoder {version} at {path} not rolled out: {exc}; the worker keeps the current encoder")
            return False
        self._dirty = True
        await self.save()
        log.info(f"switched to encoder {version}: {len(new.index)} items embedded in {time.monotonic() - started:.1f} s")
        return True

    async def _embedded_with(self, path: Path, key: str, finish: Callable[[Catalog], None]) -> Catalog:
        """The catalog embedded again by the encoder at `path` into a new index, off the event loop while
        the current one keeps serving; in the models thread, caught up with the items applied meanwhile
        (noted under `key`) and handed to `finish`. A failure raises, with nothing left noted."""
        loop = asyncio.get_running_loop()
        try:
            encoder = await loop.run_in_executor(None, self._new_encoder, path)
            described: list[ItemMeta] = await self.models.run(self._begin_build, key)
            new = Catalog(await loop.run_in_executor(None, embedded_again, described, encoder), encoder)
            await self.models.run(self._caught_up_build, key, new, finish)
        except Exception:
            self._build_logs.pop(key, None)
            raise
        metrics.ITEMS_EMBEDDED.inc(len(described))
        return new

    def _begin_build(self, key: str) -> list[ItemMeta]:
        """In the models thread: the items as they are now; from now on, applied items are noted under `key`."""
        assert self.catalog is not None
        self._build_logs[key] = []
        return self.catalog.index.described()

    def _caught_up_build(self, key: str, new: Catalog, finish: Callable[[Catalog], None]) -> None:
        """In the models thread: the items applied while `new` was embedded, applied to it too; then `finish`."""
        pending = self._build_logs.pop(key)
        if pending:
            new.ingest(pending)
        finish(new)

    def _finish_switch(self, new: Catalog) -> None:
        """In the models thread: swap to the new index, caught up with the items applied meanwhile."""
        assert self.catalog is not None
        for listener in self.switch_listeners:  # the recommender refuses an encoder the users' vectors cannot use
            listener(new)
        old, self.catalog = self.catalog, new
        metrics.ENCODER.labels(old.encoder.name).set(0)
        metrics.ENCODER.labels(new.encoder.name).set(1)
        metrics.ENCODER_SWITCHES.inc()
        metrics.INDEX_SIZE.set(len(new.index))

    # -- variants with an encoder of their own -------------------------------------------------------
    @Service.task
    async def _build_variant_catalogs(self) -> None:
        """Once the catalog has caught up: each variant's catalog that was not loaded from disk."""
        wanted = self.settings.experiment.encoders
        if not wanted:
            return
        await self.caught_up.wait()
        for name, path in wanted.items():
            if name not in self.variant_catalogs and not self.should_stop:
                await self.build_variant_catalog(name, path)

    async def build_variant_catalog(self, variant: str, path: Path) -> bool:
        """Embed the catalog with the encoder at `path` for `variant`'s users. Until it is ready they
        are ranked like everyone else; a failure leaves them so, and says why in the log."""
        started = time.monotonic()
        log.info(f"variant {variant!r} ranks with the encoder at {path}: embedding the catalog for it")
        try:
            new = await self._embedded_with(path, variant, partial(self._finish_variant, variant))
        except Exception as exc:
            metrics.ENCODER_SWITCH_FAILURES.inc()
            log.error(f"variant {variant!r}: the encoder at {path} could not be used: {exc}; its users are ranked "
                      "with the worker's encoder")
            return False
        self._dirty = True
        await self.save()
        log.info(f"variant {variant!r} ranks with encoder {new.encoder.name}: {len(new.index)} items embedded in "
                 f"{time.monotonic() - started:.1f} s")
        return True

    def _finish_variant(self, variant: str, new: Catalog) -> None:
        """In the models thread: use the variant's index, caught up with the items applied meanwhile."""
        # Kept before the listeners hear of it: a recommender made meanwhile copies what is kept.
        self.variant_catalogs[variant] = new
        try:
            for listener in self.variant_listeners:
                listener(variant, new)
        except Exception:  # refused (another vector size): not kept either
            del self.variant_catalogs[variant]
            raise
        metrics.ENCODER.labels(new.encoder.name).set(1)
