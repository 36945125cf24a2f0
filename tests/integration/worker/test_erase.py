"""`recstream users erase`: the user's state row, list and table view go, and stay gone after a restart."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from models.datasets.synthetic import generate_catalog, generate_events
from schemas.records import Event, EventType
from streams.kafka.producing import publish_events
from streams.kafka.topics import changelog_topic
from streams.kafka.watching import latest_for_user, scan_to_end
from streams.lab.reliability.checks import export_states, wait_until_applied
from streams.lab.stack import LocalStack

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

GONE = "user-to-forget"


def test_erase_deletes_the_user_everywhere_and_survives_a_restart(stack: LocalStack, tmp_path: Path) -> None:
    settings = stack.settings()
    catalog = generate_catalog()
    events = [e for e in generate_events(catalog, n_users=6, events_per_user=10)]
    events += [e.model_copy(update={"user_id": GONE, "event_id": "g-" + e.event_id}) for e in events[:10]]
    last_of_user = {e.user_id: e.event_id for e in events}
    publisher, worker = stack.start_worker_with_catalog(catalog, "erase-worker")
    publish_events(publisher, settings.topic_events, events)
    publisher.flush()
    before = wait_until_applied(worker.env, tmp_path / "before.jsonl", last_of_user, timeout=120)
    assert before[GONE]["events_applied"] == 10 and latest_for_user(settings, GONE) is not None

    proc = subprocess.run([sys.executable, "-m", "streams.cli", "users", "erase", GONE],
                          env=worker.env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    seconds = float(re.search(r"deleted ([0-9.]+)s after the erase event reached Kafka", proc.stdout).group(1))  # type: ignore[union-attr]
    print(f"\nerase confirmed after {seconds:.3f}s")
    assert seconds < 1.0, proc.stdout

    # State row: gone from the changelog (export) and from the worker's table (users gauge).
    after = export_states(worker.env, tmp_path / "after.jsonl")
    assert GONE not in after and set(after) == set(before) - {GONE}
    assert all(after[u] == before[u] for u in after), "other users untouched"
    # List: the newest record for the user's key on the recommendations topic is a tombstone.
    newest = {m.key(): m.value() for m in scan_to_end(settings, settings.topic_recommendations)}
    assert newest[GONE.encode()] is None and latest_for_user(settings, GONE) is None
    # The changelog's newest record for the user is a tombstone too, so recovery deletes the row.
    changelog = {m.key(): m.value() for m in scan_to_end(settings, changelog_topic(settings))}
    assert changelog[GONE.encode()] is None
    # Co-visits are anonymous: no message on the covisits topic is keyed by (or names) a user.
    keys = {m.key() for m in scan_to_end(settings, settings.topic_covisits)}
    assert keys and all(re.fullmatch(rb"p\d+", k) for k in keys), keys
    users_now = _wait_metric(worker, "recstream_users", len(after))
    assert users_now == len(after)

    # A restart that rebuilds the table from the changelog alone does not bring the user back.
    worker.stop()
    worker = stack.add_worker("erase-worker", fresh_state=True)
    worker.wait_ready(timeout=240)
    assert _wait_metric(worker, "recstream_users", len(after)) == len(after)
    comeback = Event(event_id="g-new", user_id=GONE, type=EventType.CLICK, item_id=catalog[0].item_id,
                     ts=int(time.time() * 1000))
    publish_events(publisher, settings.topic_events, [comeback])
    publisher.flush()
    rows = wait_until_applied(worker.env, tmp_path / "restart.jsonl", {GONE: "g-new"}, timeout=60)
    assert rows[GONE]["events_applied"] == 1, "a returning user starts from nothing"
    assert [item for item, _ in rows[GONE]["recent"]] == [catalog[0].item_id]


def _wait_metric(worker, name: str, expected: float, timeout: float = 30.0) -> float | None:
    """The users gauge is refreshed every 10 s; wait for it to settle on `expected`."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = worker.metric(name)
        if value == expected:
            break
        time.sleep(1.0)
    return value
