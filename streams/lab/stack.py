"""A local recstream stack: the embedded broker plus worker processes, for the demo, benchmarks and tests.

Workers run as real `recstream worker` processes (not in-process), so what is measured and tested
is exactly what users run.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka.admin import AdminClient

from schemas.records import Event, Item
from streams.kafka.producing import Publisher, make_producer, publish_events, publish_items
from streams.kafka.topics import ensure_topics, topic_specs
from streams.lab.broker import EmbeddedBroker, free_port
from streams.lab.children import die_with_parent
from streams.settings import Settings


class StackError(RuntimeError):
    """A worker did not start or become ready; the message names its log file."""


@dataclass
class WorkerProcess:
    worker_id: str
    env: dict[str, str]
    log_path: Path
    metrics_port: int
    http_port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker"], env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
            # If whatever started it dies, the worker gets the SIGTERM its clean stop (drain, commit) expects.
            preexec_fn=die_with_parent(signal.SIGTERM),
        )
        return self

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2) as resp:
            return resp.read().decode()

    def metric(self, name: str) -> float | None:
        """The value of an unlabelled sample (or the sum of a labelled family) in this worker's scrape."""
        total = None
        for line in self.metrics().splitlines():
            if line.startswith(name) and (line[len(name)] in " {"):
                total = (total or 0.0) + float(line.rsplit(" ", 1)[1])
        return total

    def is_ready(self) -> bool:
        try:
            return self.metric("recstream_ready") == 1.0
        except OSError:
            return False

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise StackError(f"worker {self.worker_id} exited with code {self.proc.returncode}; see {self.log_path}")
            if self.is_ready():
                return
            time.sleep(0.5)
        raise StackError(f"worker {self.worker_id} not ready after {timeout:.0f}s; see {self.log_path}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class LocalStack:
    """Broker (embedded unless `bootstrap` is given) and any number of workers under one folder."""

    root: Path
    bootstrap: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    broker: EmbeddedBroker | None = None
    workers: list[WorkerProcess] = field(default_factory=list)
    # Each worker joins the group as a static member named by its worker id (RECSTREAM_KAFKA_GROUP_INSTANCE_ID).
    static_members: bool = False

    def start_broker(self) -> str:
        if self.bootstrap is None:
            self.root.mkdir(parents=True, exist_ok=True)
            self.broker = EmbeddedBroker(free_port(), log_file=self.root / "broker.log").start()
            self.bootstrap = self.broker.bootstrap
        return self.bootstrap

    def settings(self) -> Settings:
        """Client settings that match this stack's workers (bootstrap, topic names, app id)."""
        env = {k[len("RECSTREAM_"):].lower(): v for k, v in self.extra_env.items() if k.startswith("RECSTREAM_")}
        return Settings(**{**env, "kafka_bootstrap": self.start_broker()})

    def worker_env(self, worker_id: str, metrics_port: int, http_port: int) -> dict[str, str]:
        assert self.bootstrap is not None, "start the broker first"
        return {
            **os.environ,
            "RECSTREAM_KAFKA_BOOTSTRAP": self.bootstrap,
            "RECSTREAM_DATA_DIR": str(self.root / "data"),
            "RECSTREAM_WORKER_ID": worker_id,
            "RECSTREAM_METRICS_PORT": str(metrics_port),
            "RECSTREAM_HTTP_PORT": str(http_port),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            **({"RECSTREAM_KAFKA_GROUP_INSTANCE_ID": worker_id} if self.static_members else {}),
            **self.extra_env,
        }

    def add_worker(self, worker_id: str | None = None, fresh_state: bool = False) -> WorkerProcess:
        worker_id = worker_id or f"worker-{len(self.workers) + 1}"
        if fresh_state:
            # Tables must not outlive the broker they were recovered from (the embedded one forgets all).
            shutil.rmtree(self.root / "data" / worker_id / "faust", ignore_errors=True)
        port, http_port = free_port(), free_port()
        worker = WorkerProcess(worker_id, self.worker_env(worker_id, port, http_port), self.root / f"{worker_id}.log",
                               port, http_port)
        self.workers.append(worker.start())
        return worker

    def start_worker_with_catalog(
        self, catalog: Sequence[Item], worker_id: str | None = None, fresh_state: bool = False, timeout: float = 240.0
    ) -> tuple[Publisher, WorkerProcess]:
        """Publish `catalog`, start a worker and wait until it is ready; returns a publisher for events."""
        settings = self.settings()
        publisher = Publisher(make_producer(settings))
        publish_items(publisher, settings.topic_items, catalog)
        publisher.flush()
        worker = self.add_worker(worker_id, fresh_state=fresh_state)
        worker.wait_ready(timeout=timeout)
        return publisher, worker

    def prefill(self, catalog: Sequence[Item], events: Sequence[Event], timeout: float = 600.0) -> None:
        """Create the topics and publish `catalog` and `events` before any worker starts: a backlog."""
        settings = self.settings()
        ensure_topics(AdminClient(settings.confluent_config()), topic_specs(settings))
        publisher = Publisher(make_producer(settings))
        publish_items(publisher, settings.topic_items, catalog)
        publish_events(publisher, settings.topic_events, events)
        publisher.flush(timeout=timeout)

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        if self.broker is not None:
            self.broker.stop()

    def __enter__(self) -> LocalStack:
        self.start_broker()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
