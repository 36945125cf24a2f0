"""The broker pauses (SIGSTOP) mid-replay, or does not exist yet: the worker waits, reconnects, loses nothing."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from models.datasets.synthetic import generate_catalog, generate_events
from streams.lab.broker import EmbeddedBroker, free_port
from streams.lab.reliability.checks import isolated_env
from streams.lab.reliability.crashes import run_broker_pause
from streams.lab.stack import LocalStack

pytestmark = [pytest.mark.integration, pytest.mark.reliability]


def test_a_paused_broker_loses_nothing_and_applies_nothing_twice(tmp_path: Path) -> None:
    catalog = generate_catalog()
    events = generate_events(catalog, n_users=100, events_per_user=50)  # 5,000 events
    with EmbeddedBroker(free_port(), log_file=tmp_path / "broker.log") as broker, \
            LocalStack(tmp_path, bootstrap=broker.bootstrap, extra_env=isolated_env()) as stack:
        report = run_broker_pause(broker, stack, catalog, events, pause_s=20.0, rate=400.0, workdir=tmp_path)
    print(f"\nbroker paused {report.pause_s:.0f} s during {report.events} events: lost {report.lost}, "
          f"applied twice {report.twice}")
    assert report.worker_survived
    assert (report.lost, report.twice) == (0, 0)


def test_a_worker_started_before_its_broker_waits_and_says_so(tmp_path: Path) -> None:
    port = free_port()
    stack = LocalStack(tmp_path, bootstrap=f"127.0.0.1:{port}", extra_env=isolated_env())
    worker = stack.add_worker("early")
    try:
        time.sleep(8.0)
        assert worker.proc is not None and worker.proc.poll() is None, "no crash while the broker is missing"
        assert "waiting for Kafka" in worker.log_path.read_text()
        with EmbeddedBroker(port, log_file=tmp_path / "broker.log"):
            worker.wait_ready(timeout=240)
            assert "Kafka is up" in worker.log_path.read_text()
            worker.stop()
    finally:
        stack.stop()
