"""The Faust app: topics, the users table, the events agent, the catalog, co-visit and list services, wired together."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import faust
from faust.exceptions import ConsumerNotStarted
from mode import CrashingSupervisor

from models.catalog import Catalog
from models.covisitation import CoVisitation
from models.encoder import Encoder
from models.pipeline import Recommender
from models.ranking import Scored
from models.similar import similar_items
from schemas.decode import EVENT_REASONS, ITEM_REASONS, STATE_UNREADABLE
from streams.kafka.topics import (
    DEAD_LETTER_MAX_BYTES,
    ERASABLE_COMPACTION,
    USERS_TABLE,
    WORKER_HEADER,
    changelog_topic,
)
from streams.settings import Settings
from streams.worker import metrics
from streams.worker.batch_output import BatchOutput
from streams.worker.catalog_service import CatalogService
from streams.worker.changelog_end import verify_changelog_ends
from streams.worker.collector import freeze_survivors
from streams.worker.commit_gate import gate_commits, stop_worker
from streams.worker.committed_seek import seek_uncommitted_to_start
from streams.worker.covisit_service import CoVisitService
from streams.worker.credentials import faust_credentials
from streams.worker.events_agent import EventsProcessor
from streams.worker.faust_setup import faust_brokers, tune_faust
from streams.worker.fetch_watchdog import FetchWatchdog
from streams.worker.http_api import add_read_api
from streams.worker.list_cache import ListCache
from streams.worker.loop_lag import LoopLagMonitor
from streams.worker.model_access import ModelAccess
from streams.worker.publishing import DeadLetters
from streams.worker.table_writes import BatchedTable, count_rows


def _raw_topic(app: faust.App, name: str, partitions: int | None = None) -> faust.TopicT:
    """Bytes in, bytes out: decoding is ours, so a bad message is dead-lettered, never a crash."""
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw", partitions=partitions)


def _bytes_table(
    app: faust.App, settings: Settings, name: str, partitions: int, changelog_topic: faust.TopicT | None = None
) -> faust.types.TableT:
    table = app.Table(
        name,
        default=None,
        key_type=bytes,
        value_type=bytes,
        partitions=partitions,
        changelog_topic=changelog_topic,
        # A user's state: an erase's tombstone must clear the older states from the changelog in bounded time.
        extra_topic_configs=dict(ERASABLE_COMPACTION),
        # Faust's RocksDB defaults (64 MB x 3 memtables, a 2 GB cache, per partition) are sized for big
        # servers; these bound a worker's table memory to settings.rocksdb_memory_mb(partitions).
        options={
            "driver": "rocksdict",
            "write_buffer_size": settings.rocksdb_write_buffer_mb * 2**20,
            "max_write_buffer_number": 2,
            "block_cache_size": settings.rocksdb_block_cache_mb * 2**20,
            "block_cache_compressed_size": 0,
        },
    )
    # Faust picks "json" for non-model types; values are our own bytes (models.state_codec, list JSON).
    table.key_serializer = table.value_serializer = "raw"
    return table


def build_app(settings: Settings, events_partitions: int | None = None, encoder: Encoder | None = None) -> faust.App:
    """The worker's Faust app. `encoder` embeds item texts and search queries (loaded by the caller
    before the loop starts; None: loaded by the catalog service as it starts)."""
    partitions = events_partitions or settings.events_partitions
    tune_faust(settings)
    verify_changelog_ends(settings)
    seek_uncommitted_to_start()
    app = faust.App(
        settings.app_id,
        broker=faust_brokers(settings),
        datadir=str(settings.worker_dir / "faust"),
        store="rocksdb://",
        # The read API (streams/worker/http_api.py). Requests for a user whose partition another worker owns
        # are forwarded to that worker's advertised URL, which the workers exchange when they rebalance.
        web_enabled=settings.http_port > 0,
        web_bind=settings.http_bind,
        web_port=settings.http_port or 6066,
        web_host=settings.advertised_http_host,
        topic_partitions=partitions,
        table_standby_replicas=0,
        consumer_auto_offset_reset="earliest",
        # A killed worker's partitions are reassigned after this, not after Faust's 60 s default.
        broker_session_timeout=settings.kafka_session_timeout_s,
        broker_heartbeat_interval=settings.kafka_session_timeout_s / 4,
        # With an instance id, a worker restarted after a crash rejoins as the same member.
        consumer_group_instance_id=settings.kafka_group_instance_id,
        autodiscover=False,
        broker_credentials=faust_credentials(settings),
        # Dead letters carry the original base64-encoded: room for a ~1 MB event.
        producer_max_request_size=DEAD_LETTER_MAX_BYTES,
    )
    events_topic = _raw_topic(app, settings.topic_events, partitions)
    # One librdkafka producer for everything the worker writes (see streams/worker/batch_output.py).
    output = BatchOutput(settings)
    dead_letters = DeadLetters(output, settings.topic_dead_letter)
    users = _bytes_table(app, settings, USERS_TABLE, partitions)
    # The item index and co-visitation are read and written in one models thread, off the event loop.
    models = ModelAccess()
    catalog = CatalogService(settings, models, dead_letters, encoder, loop=app.loop, beacon=app.beacon)
    app.add_dependency(catalog)
    covis = CoVisitation(settings.core)
    covisits = CoVisitService(settings, models, covis, loop=app.loop, beacon=app.beacon)
    app.add_dependency(covisits)
    app.add_dependency(LoopLagMonitor(loop=app.loop, beacon=app.beacon))
    app.add_dependency(FetchWatchdog(app, events_topic.get_topic_name(), loop=app.loop, beacon=app.beacon))
    # Every series the dashboard plots exists from the first scrape, at 0.
    metrics.start_at_zero(partitions, {settings.topic_events: EVENT_REASONS, settings.topic_items: ITEM_REASONS,
                                       changelog_topic(settings): (STATE_UNREADABLE,)}, settings.experiment.names)
    for partition in range(partitions):
        metrics.CONSUMER_LAG.labels(settings.topic_events, str(partition)).set(0)

    def owned_partitions() -> set[int]:
        try:
            assignment = app.consumer.assignment()
        except ConsumerNotStarted:
            return set()
        return {tp.partition for tp in assignment if tp.topic == events_topic.get_topic_name()}

    # The latest list of each owned user, for the read API.
    lists = ListCache(settings, partitions, owned_partitions, loop=app.loop, beacon=app.beacon)
    app.add_dependency(lists)

    processor: EventsProcessor | None = None

    def switch_recommender(new: Catalog) -> None:
        """A new encoder version: the recommender ranks with its index from the next batch on."""
        if processor is not None:
            processor.recommender.use_content(new.index, new.encoder)

    catalog.switch_listeners.append(switch_recommender)

    def use_variant_catalog(variant: str, new: Catalog) -> None:
        """A variant's own encoder is ready: its users are ranked with its index from the next batch on."""
        if processor is not None:
            processor.recommender.use_variant_content(variant, new.index, new.encoder)

    catalog.variant_listeners.append(use_variant_catalog)

    def get_processor() -> EventsProcessor:
        nonlocal processor
        if processor is None:
            assert catalog.catalog is not None
            processor = EventsProcessor(
                recommender=Recommender(catalog.index, catalog.catalog.encoder, settings.core, covis, settings.experiment),
                models=models,
                users=BatchedTable(users, output, changelog_topic(settings)),
                recommendations_topic=settings.topic_recommendations,
                # Every list says which worker made it: the owner of the user's partition at the time.
                list_headers=[(WORKER_HEADER, settings.worker_id.encode())],
                write_lists=lists.write,
                output=output,
                covisits_topic=settings.topic_covisits,
                dead_letters=dead_letters,
                partitions=partitions,
                limits=settings.limits,
                model_version=settings.model_version,
            )
            for variant, own in list(catalog.variant_catalogs.items()):  # built or loaded before the first batch
                processor.recommender.use_variant_content(variant, own.index, own.encoder)
        return processor

    # An agent that raises is not restarted (Faust's default would restart it, and its
    # `take_events` would ack the abandoned batch): the processor latches the failure, the commit
    # gate refuses every commit from then on, and the worker exits for its supervisor to restart.
    @app.agent(events_topic, name="events", supervisor_strategy=CrashingSupervisor)
    async def events_agent(stream: faust.StreamT) -> None:
        # Events wait until the whole catalog is in the index, so none is applied without its item.
        await catalog.caught_up.wait()
        events = get_processor()
        gate_commits(app.consumer, events, on_failure=stop_worker)
        try:
            async for batch in stream.take_events(settings.batch_max, within=settings.batch_wait_ms / 1000.0):
                await events.process(batch)
        except Exception as exc:
            events.fail(exc)
            stop_worker(exc)
            raise
        except asyncio.CancelledError as exc:  # the worker stops; `process` latched a batch cut short
            if events.failed is None and not app.should_stop:
                events.fail(exc)
                stop_worker(exc)
            raise

    @app.on_partitions_revoked.connect
    async def drain_before_recovery(sender: faust.App, revoked: set, **_: object) -> None:
        """Every state written so far reaches the changelog (and RocksDB) before partitions move.

        Faust waits for the agent to finish its batch at a revoke, but not for our output; its table
        recovery for the partitions assigned next then replays the changelog over RocksDB. A state
        still on its way would be missing from the replay, and a later batch would read the older one
        the replay left: an applied event lost (seen once in 300,000 under overload, and in a hand-over).
        """
        if processor is None or processor.failed is not None:
            return
        try:
            await processor.drain()
        except Exception as exc:
            stop_worker(exc)

    def is_ready() -> bool:
        # Co-visitation too: until it has caught up with its topic, lists lack what other workers learnt.
        return (app.tables.recovery.completed.is_set() and catalog.caught_up.is_set()
                and covisits.caught_up.is_set() and lists.caught_up())

    was_ready = False

    @app.timer(1.0)
    async def report_readiness() -> None:
        nonlocal was_ready
        ready = is_ready()
        metrics.READY.set(1 if ready else 0)
        if ready and not was_ready:  # what the worker restored stays for good: no collection walks it
            freeze_survivors("first ready", collect=False)
            was_ready = True

    async def similar(item_id: str, k: int) -> list[Scored] | None:
        """In the models thread, where the index and co-visitation are written."""
        return await models.run(similar_items, item_id, catalog.index, covis, settings.core, k)

    async def categories_of(item_ids: Iterable[str]) -> dict[str, list[str]]:
        index = catalog.index
        return await models.run(lambda: {i: list(m.categories) for i in item_ids if (m := index.meta(i)) is not None})

    if settings.http_port > 0:
        token = settings.http_token.get_secret_value() if settings.http_token else None
        add_read_api(app, lists, users, is_ready, settings.worker_id, token, settings.experiment, similar,
                     categories_of, settings.core.list_length)

    @app.timer(1.0)
    async def report_lag() -> None:
        if processor is not None:
            await processor.report_lag(app.consumer.highwaters, owned_partitions())

    @app.timer(1.0)
    async def report_partitions() -> None:
        owned = owned_partitions()
        for partition in range(partitions):
            metrics.PARTITION_OWNED.labels(str(partition)).set(1 if partition in owned else 0)

    @app.timer(10.0)
    async def count_users() -> None:
        metrics.USERS_IN_STATE.set(await count_rows(users))

    app.recstream_catalog = catalog  # type: ignore[attr-defined]
    return app
