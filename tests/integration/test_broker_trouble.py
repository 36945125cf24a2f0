"""The broker pauses (SIGSTOP) mid-replay, or does not exist yet: the worker waits, reconnects, loses nothing."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from models.datasets.synthetic import generate_catalog, generate_events
from streams.broker import EmbeddedBroker, free_port
from streams.stack import LocalStack

from streams.reliability.checks import isolated_env, replay_in_background, wait_until_applied

pytestmark = pytest.mark.integration


def test_a_paused_broker_loses_nothing_and_applies_nothing_twice(tmp_path: Path) -> None:
    catalog = generate_catalog()
    events = generate_events(catalog, n_users=100, events_per_user=50)  # 5,000 events
    per_user = {u: sum(1 for e in events if e.user_id == u) for u in {e.user_id for e in events}}
    last_of_user = {e.user_id: e.event_id for e in events}
    with EmbeddedBroker(free_port(), log_file=tmp_path / "broker.log") as broker, \
            LocalStack(tmp_path, bootstrap=broker.bootstrap, extra_env=isolated_env()) as stack:
        settings = stack.settings()
        publisher, worker = stack.start_worker_with_catalog(catalog, "steady")
        sender = replay_in_background(publisher, settings, events, 400.0)
        time.sleep(4.0)
        broker.signal(signal.SIGSTOP)
        time.sleep(20.0)
        broker.signal(signal.SIGCONT)
        sender.join()
        rows = wait_until_applied(worker.env, tmp_path / "export.jsonl", last_of_user, timeout=180)
        assert worker.proc is not None and worker.proc.poll() is None, "the worker survived the pause"
    applied = {u: rows[u]["events_applied"] for u in per_user}
    lost = sum(max(0, per_user[u] - applied[u]) for u in per_user)
    twice = sum(max(0, applied[u] - per_user[u]) for u in per_user)
    print(f"\nbroker paused 20 s during {len(events)} events: lost {lost}, applied twice {twice}")
    assert (lost, twice) == (0, 0)


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
