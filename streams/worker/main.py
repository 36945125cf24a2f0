"""Starting a worker: wait for Kafka, make sure the topics exist, serve metrics, run Faust."""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path

from confluent_kafka.admin import AdminClient

from models.variants import Experiment, VariantsError
from streams.kafka.topics import ensure_topics, topic_specs, wait_for_kafka
from streams.settings import Settings
from streams.worker import commit_gate, logs, metrics
from streams.worker.collector import collect_rarely, freeze_survivors
from streams.worker.model_access import SWITCH_INTERVAL_S

log = logging.getLogger(__name__)


def events_partition_count(admin: AdminClient, settings: Settings) -> int:
    """The real partition count: partitioning decisions must match the topic, not the setting."""
    topic = admin.list_topics(topic=settings.topic_events, timeout=10).topics[settings.topic_events]
    count = len(topic.partitions)
    if count != settings.events_partitions:
        log.warning(
            "events topic partition count differs from RECSTREAM_EVENTS_PARTITIONS; using the topic's",
            extra={"topic": count, "setting": settings.events_partitions},
        )
    return count


def check_variant_encoders(experiment: Experiment) -> None:
    """Every variant's encoder folder holds a model, or a VariantsError naming the variant and what is wrong."""
    from models.encoder import check_model_folder

    for variant, folder in experiment.encoders.items():
        try:
            check_model_folder(folder)
        except (OSError, ValueError) as exc:
            raise VariantsError(f"variant {variant!r}'s encoder: {exc}") from None


def run_worker(settings: Settings) -> None:
    import faust

    from models.encoder import SentenceEncoder, check_model_folder
    from streams.worker.app import build_app

    logs.configure(settings.log_level)
    settings.experiment  # a bad variants file stops the worker here, with one line, before it joins the group
    if settings.encoder_path is not None:
        check_model_folder(settings.encoder_path)  # and so does an encoder folder without a model
    check_variant_encoders(settings.experiment)
    admin = wait_for_kafka(settings)
    ensure_topics(admin, topic_specs(settings))
    partitions = events_partition_count(admin, settings)
    settings.worker_dir.mkdir(parents=True, exist_ok=True)
    metrics.serve(settings.metrics_host, settings.metrics_port)
    log.info(
        "worker starting",
        extra={"bootstrap": settings.kafka_bootstrap, "data_dir": str(settings.worker_dir),
               "metrics": f"http://{settings.metrics_host}:{settings.metrics_port}/metrics"},
    )
    discard_cache_after_crash(settings.worker_dir)
    # Loaded before the event loop runs: importing torch and reading the model's weights hold the
    # GIL for seconds at a time, which on the loop (or beside it) stalls everything.
    encoder = SentenceEncoder(settings.encoder_path, threads=settings.encoder_threads, int8=settings.encoder_int8)
    app = build_app(settings, partitions, encoder)
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False)
    collect_rarely()
    freeze_survivors("imports, the encoder and the app")
    # The loop takes the GIL back from the models thread within this (streams/worker/model_access.py).
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    code: object = 1
    try:
        worker.execute_from_commandline()
        code = 0
    except SystemExit as exc:
        code = commit_gate.FAILED_EXIT if commit_gate.stopped_by else exc.code
        raise SystemExit(code) from None
    finally:
        if code in (0, None) and not commit_gate.stopped_by:
            (settings.worker_dir / CLEAN_MARKER).touch()
    if commit_gate.stopped_by:
        raise SystemExit(commit_gate.FAILED_EXIT)


CLEAN_MARKER = "clean-shutdown"


def discard_cache_after_crash(worker_dir: Path) -> None:
    """After a kill -9 the local table copy is dropped and rebuilt from the changelog. RocksDB
    holds only acknowledged states (streams/worker/table_writes.py), but Faust's persisted offset can be
    past the end a broker reports (the embedded Tansu under-reports it), and Faust then refuses to
    start (ConsistencyError). The changelog is the truth and offsets are only committed after it is
    flushed, so rebuilding loses nothing; it costs a full changelog read at start.
    """
    marker = worker_dir / CLEAN_MARKER
    tables = worker_dir / "faust"
    if tables.exists() and not marker.exists():
        log.warning(
            "the previous run of this worker did not shut down cleanly: rebuilding its table state from the changelog",
            extra={"discarded": str(tables)},
        )
        shutil.rmtree(tables)
    marker.unlink(missing_ok=True)
