"""Faults inside a real worker, through the real broker: none may lose or double an event.

Each fault is injected from outside the production code (tests/integration/worker/faults/sitecustomize.py
on the worker's PYTHONPATH): a raising encoder, a corrupt stored state, Kafka refusing output, and
a kill -9 after events were re-sent to their user's partition but before their offsets committed.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer

from models.datasets.synthetic import generate_catalog, generate_events
from schemas.records import Event, EventType, Item
from streams.kafka.producing import publish_events
from streams.worker.commit_gate import FAILED_EXIT
from streams.lab.reliability.checks import (
    events_per_user, isolated_env, lost_and_twice, wait_until_applied, wait_until_counted,
)
from streams.kafka.topics import changelog_topic
from streams.kafka.topics import partition_for
from streams.kafka.watching import RecommendationWatcher
from streams.lab.reliability.hostile import read_dead_letters
from streams.lab.stack import LocalStack, WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

FAULTS_DIR = Path(__file__).parent / "faults"
CATALOG: list[Item] = generate_catalog()


@pytest.fixture
def faulty(kafka_bootstrap: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LocalStack]:
    """A stack whose workers run with the faults named by the test's `faults` marker."""
    marker = request.node.get_closest_marker("faults")
    env = {**isolated_env(), "PYTHONPATH": str(FAULTS_DIR),
           "RECSTREAM_TEST_FAULTS": ",".join(marker.args if marker else ()),
           "RECSTREAM_TEST_FAULT_DIR": str(tmp_path)}
    with LocalStack(tmp_path / "stack", bootstrap=kafka_bootstrap, extra_env=env) as stack:
        yield stack


def _wait_exit(worker: WorkerProcess, timeout: float) -> int | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.proc is not None and worker.proc.poll() is not None:
            return worker.proc.returncode
        time.sleep(0.2)
    return None


@pytest.mark.faults("poison_query", "flaky_encoder")
def test_a_raising_encoder_costs_only_the_event_it_fails_on(faulty: LocalStack, tmp_path: Path) -> None:
    settings = faulty.settings()
    publisher, worker = faulty.start_worker_with_catalog(CATALOG, "enc")
    now = int(time.time() * 1000)
    clicks = [Event(event_id=f"c{n}", user_id=f"u{n % 20}", type=EventType.CLICK, item_id=CATALOG[n].item_id,
                    ts=now + n) for n in range(60)]
    searches = [Event(event_id=f"s{n}", user_id=f"u{n % 20}", type=EventType.SEARCH, query=f"query: space film {n}",
                      ts=now + 100 + n) for n in range(20)]
    poison = Event(event_id="p0", user_id="u-poisoned", type=EventType.SEARCH, query="poison pill", ts=now + 200)
    events = clicks + searches + [poison]
    with RecommendationWatcher(settings) as watcher:
        publish_events(publisher, settings.topic_events, events)
        publisher.flush()
        good = [e for e in events if e is not poison]
        rows = wait_until_applied(worker.env, tmp_path / "enc.jsonl", {e.user_id: e.event_id for e in good}, 120)
        assert all(watcher.wait_for(u, timeout=10) for u in {e.user_id for e in good}), "every good user got a list"
    assert lost_and_twice(events_per_user(good), rows) == (0, 0)
    assert "u-poisoned" not in rows
    letters = read_dead_letters(settings, 1, timeout=30)
    (letter,) = [d for d in letters.values() if d["reason"] == "processing_failed"]
    assert "breaks the encoder" in letter["detail"]
    assert json.loads(base64.b64decode(letter["original_b64"]))["event_id"] == "p0"
    assert worker.proc is not None and worker.proc.poll() is None, "the worker kept running"
    assert (worker.metric("recstream_step_retries_total") or 0) >= 1, "the transient failures were retried"


@pytest.mark.faults()
def test_an_unreadable_state_row_is_quarantined_without_failing_other_users(faulty: LocalStack, tmp_path: Path) -> None:
    settings = faulty.settings()
    publisher, worker = faulty.start_worker_with_catalog(CATALOG, "rows")
    now = int(time.time() * 1000)
    users = ["alice", "bob", "carol"]
    first = [Event(event_id=f"{u}-{n}", user_id=u, type=EventType.CLICK, item_id=CATALOG[n].item_id, ts=now + n)
             for u in users for n in range(3)]
    publish_events(publisher, settings.topic_events, first)
    publisher.flush()
    wait_until_applied(worker.env, tmp_path / "before.jsonl", {u: f"{u}-2" for u in users}, 120)
    worker.stop()  # a clean stop; then alice's row in the changelog is overwritten, as with kcat

    garbage = b"\x00not a recstream state\xff"
    producer = Producer(settings.confluent_config())
    producer.produce(changelog_topic(settings), garbage, b"alice",
                     partition=partition_for("alice", settings.events_partitions))
    assert producer.flush(10) == 0

    worker = faulty.add_worker("rows")
    worker.wait_ready(timeout=240)
    after = [Event(event_id=f"{u}-new", user_id=u, type=EventType.CLICK, item_id=CATALOG[9].item_id, ts=now + 50)
             for u in users]
    with RecommendationWatcher(settings) as watcher:
        publish_events(publisher, settings.topic_events, after)
        publisher.flush()
        for u in users:
            assert watcher.wait_for_trigger(f"{u}-new", timeout=30) is not None, f"{u} got a list"
    rows = wait_until_applied(worker.env, tmp_path / "after.jsonl", {u: f"{u}-new" for u in users}, 60)
    assert rows["alice"]["events_applied"] == 1, "alice starts afresh"
    assert rows["bob"]["events_applied"] == rows["carol"]["events_applied"] == 4
    letters = read_dead_letters(settings, 1, timeout=30)
    (letter,) = [d for d in letters.values() if d["reason"] == "state_unreadable"]
    assert base64.b64decode(letter["original_b64"]) == garbage
    assert letter["source"]["topic"] == changelog_topic(settings)
    assert worker.metric("recstream_states_quarantined_total") == 1


@pytest.mark.faults("refuse_output")
def test_refused_output_stops_the_worker_and_a_restart_applies_every_event_once(
    faulty: LocalStack, tmp_path: Path
) -> None:
    settings = faulty.settings()
    publisher, worker = faulty.start_worker_with_catalog(CATALOG, "out")
    events = generate_events(CATALOG, n_users=60, events_per_user=10, seed=21)
    publish_events(publisher, settings.topic_events, events)
    publisher.flush()
    assert _wait_exit(worker, 60) == FAILED_EXIT, "a batch whose output Kafka refused stops the worker"
    worker = faulty.add_worker("out")
    rows = wait_until_applied(worker.env, tmp_path / "out.jsonl", {e.user_id: e.event_id for e in events}, 240)
    assert lost_and_twice(events_per_user(events), rows) == (0, 0)


@pytest.mark.faults("kill_after_rekey")
def test_events_re_sent_before_a_kill_are_applied_once(faulty: LocalStack, tmp_path: Path) -> None:
    settings = faulty.settings()
    publisher, worker = faulty.start_worker_with_catalog(CATALOG, "rekey")
    events = generate_events(CATALOG, n_users=40, events_per_user=6, seed=22)
    n = settings.events_partitions
    # Every event lands on a partition that is not its user's: the worker re-sends each one.
    for e in events:
        wrong = (partition_for(e.user_id, n) + 1) % n
        publisher.producer.produce(settings.topic_events, e.model_dump_json(exclude_none=True).encode(),
                                   e.user_id.encode(), partition=wrong)
    publisher.flush()
    assert _wait_exit(worker, 60) == -9, "the fault killed the worker after its re-sends, before its commit"
    worker = faulty.add_worker("rekey")
    worker.wait_ready(timeout=240)
    # The restarted worker re-reads the uncommitted source events, re-sends them again and meets
    # both copies in the users' partitions; it is done when its lag is gone.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if (worker.metric("recstream_events_duplicate_total") or 0) > 0 and worker.metric("recstream_consumer_lag") == 0:
            break
        time.sleep(0.5)
    time.sleep(2.0)
    sent = events_per_user(events)
    rows = wait_until_counted(worker.env, tmp_path / "rekey.jsonl", sent, 60)
    assert lost_and_twice(sent, rows) == (0, 0)
    assert (worker.metric("recstream_events_duplicate_total") or 0) > 0, "second copies were recognised"


@pytest.mark.faults("drop_tail")
def test_a_partition_whose_newest_event_was_skipped_is_read_again_by_the_watchdog(faulty: LocalStack,
                                                                                  tmp_path: Path) -> None:
    settings = faulty.settings()
    publisher, worker = faulty.start_worker_with_catalog(CATALOG, "tail")
    now = int(time.time() * 1000)
    events = [Event(event_id=f"t{n}", user_id=f"tail-{n % 12}", type=EventType.CLICK, item_id=CATALOG[n].item_id,
                    ts=now + n) for n in range(48)]
    publish_events(publisher, settings.topic_events, events)
    publisher.flush()
    rows = wait_until_applied(worker.env, tmp_path / "tail.jsonl", {e.user_id: e.event_id for e in events}, 150)
    assert lost_and_twice(events_per_user(events), rows) == (0, 0)
    assert (tmp_path / "fault-drop_tail.done").exists(), "the fault fired"
    assert worker.metric("recstream_fetch_stalls_total") == 1.0
    log = (faulty.root / "tail.log").read_text()
    assert "has events to read" in log and "reading it again from" in log
