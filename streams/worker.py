"""Starting a worker: wait for Kafka, make sure the topics exist, serve metrics, run Faust."""

from __future__ import annotations

import logging
import time

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from streams import commit_gate, logs, metrics
from streams.settings import Settings
from streams.topics import ensure_topics, topic_specs

log = logging.getLogger(__name__)


def wait_for_kafka(settings: Settings, timeout: float | None = None) -> AdminClient:
    """Block until the brokers answer, saying so every few seconds; never crash-loop on a late broker."""
    conf = {**settings.confluent_config(), "logger": logging.getLogger("librdkafka")}
    admin = AdminClient(conf)
    deadline = None if timeout is None else time.monotonic() + timeout
    announced = False
    while True:
        try:
            admin.list_topics(timeout=5)
            if announced:
                log.info("Kafka is up", extra={"bootstrap": settings.kafka_bootstrap})
            return admin
        except KafkaException as exc:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(
                    f"Kafka at {settings.kafka_bootstrap} did not answer: start it (`recstream broker` for a "
                    "local one) or set RECSTREAM_KAFKA_BOOTSTRAP"
                ) from exc
            log.warning(
                "waiting for Kafka (start it, or set RECSTREAM_KAFKA_BOOTSTRAP)",
                extra={"bootstrap": settings.kafka_bootstrap, "error": str(exc.args[0])},
            )
            announced = True
            time.sleep(2)


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


def run_worker(settings: Settings) -> None:
    import faust

    from streams.app import build_app

    logs.configure(settings.log_level)
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
    app = build_app(settings, partitions)
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        raise SystemExit(commit_gate.FAILED_EXIT if commit_gate.stopped_by else exc.code) from None
    if commit_gate.stopped_by:
        raise SystemExit(commit_gate.FAILED_EXIT)
