"""Shared by the integration tests: isolated topic names, and reading users' state as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from schemas.records import Event
from streams.producing import Publisher, paced, publish_event
from streams.settings import Settings


def isolated_env() -> dict[str, str]:
    """Own topics and consumer group per stack, so tests sharing one broker cannot see each other."""
    tag = uuid.uuid4().hex[:8]
    return {
        "RECSTREAM_APP_ID": f"recstream-test-{tag}",
        "RECSTREAM_TOPIC_EVENTS": f"t{tag}.events",
        "RECSTREAM_TOPIC_ITEMS": f"t{tag}.items",
        "RECSTREAM_TOPIC_RECOMMENDATIONS": f"t{tag}.recommendations",
        "RECSTREAM_TOPIC_COVISITS": f"t{tag}.covisits",
        "RECSTREAM_TOPIC_DEAD_LETTER": f"t{tag}.dead-letter",
        "RECSTREAM_LOG_LEVEL": "INFO",
    }


def export_states(env: dict[str, str], out: Path) -> dict[str, dict]:
    """`recstream state export` as a user runs it, beside the running worker."""
    proc = subprocess.run([sys.executable, "-m", "streams.cli", "state", "export", "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return {row["user_id"]: row for row in map(json.loads, out.read_text().splitlines())}


def wait_until_applied(env: dict[str, str], out: Path, last_of_user: dict[str, str], timeout: float) -> dict[str, dict]:
    """Exports until every user's newest applied event is their last one (or the timeout passes)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = export_states(env, out)
        done = all(rows.get(u, {}).get("last_event_id") == e for u, e in last_of_user.items())
        if done or time.monotonic() > deadline:
            return rows
        time.sleep(2.0)


def replay_in_background(publisher: Publisher, settings: Settings, events: Sequence[Event], rate: float) -> threading.Thread:
    """A started thread publishing `events` at `rate`/s, so a test can break things meanwhile."""

    def replay() -> None:
        for event in paced(events, rate):
            publish_event(publisher, settings.topic_events, event)
        publisher.flush(timeout=120)

    thread = threading.Thread(target=replay)
    thread.start()
    return thread
