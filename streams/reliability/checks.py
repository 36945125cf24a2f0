"""What every scenario needs: its own topics, a background replay, and counting what was applied."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from schemas.records import Event
from streams.producing import Publisher, paced, publish_event
from streams.settings import Settings


def isolated_env(tag: str | None = None) -> dict[str, str]:
    """Own topics and consumer group, so stacks sharing one broker cannot see each other."""
    tag = tag or uuid.uuid4().hex[:8]
    return {
        "RECSTREAM_APP_ID": f"recstream-test-{tag}",
        "RECSTREAM_TOPIC_EVENTS": f"t{tag}.events",
        "RECSTREAM_TOPIC_ITEMS": f"t{tag}.items",
        "RECSTREAM_TOPIC_RECOMMENDATIONS": f"t{tag}.recommendations",
        "RECSTREAM_TOPIC_COVISITS": f"t{tag}.covisits",
        "RECSTREAM_TOPIC_DEAD_LETTER": f"t{tag}.dead-letter",
        "RECSTREAM_LOG_LEVEL": "INFO",
    }


def export_states(env: dict[str, str], out: Path) -> dict[str, dict[str, Any]]:
    """`recstream state export` as a user runs it, beside the running worker."""
    proc = subprocess.run([sys.executable, "-m", "streams.cli", "state", "export", "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"recstream state export failed: {proc.stderr.strip()}")
    return {row["user_id"]: row for row in map(json.loads, out.read_text().splitlines())}


def wait_for_export(
    env: dict[str, str], out: Path, done: Callable[[dict[str, dict[str, Any]]], bool], timeout: float
) -> dict[str, dict[str, Any]]:
    """Exports every 2 s until `done(rows)` holds or the timeout passes; returns the last export."""
    deadline = time.monotonic() + timeout
    while True:
        rows = export_states(env, out)
        if done(rows) or time.monotonic() > deadline:
            return rows
        time.sleep(2.0)


def wait_until_applied(
    env: dict[str, str], out: Path, last_of_user: dict[str, str], timeout: float
) -> dict[str, dict[str, Any]]:
    """Until every user's newest applied event is their last one."""
    return wait_for_export(
        env, out, lambda rows: all(rows.get(u, {}).get("last_event_id") == e for u, e in last_of_user.items()), timeout
    )


def wait_until_counted(
    env: dict[str, str], out: Path, expected: dict[str, int], timeout: float
) -> dict[str, dict[str, Any]]:
    """Until every user has at least their expected number of events applied."""
    return wait_for_export(
        env, out, lambda rows: all(rows.get(u, {}).get("events_applied", 0) >= n for u, n in expected.items()), timeout
    )


class Replay(threading.Thread):
    """Publishes `events` at `rate`/s (None: as fast as possible) in the background; `stop()` ends it
    early, after which `published` is what was sent."""

    def __init__(self, publisher: Publisher, settings: Settings, events: Sequence[Event], rate: float | None) -> None:
        super().__init__(daemon=True)
        self.publisher, self.settings, self.events, self.rate = publisher, settings, events, rate
        self.sent = 0
        self._halt = threading.Event()

    def run(self) -> None:
        for event in paced(self.events, self.rate):
            if self._halt.is_set():
                break
            publish_event(self.publisher, self.settings.topic_events, event)
            self.sent += 1
        self.publisher.flush(timeout=300)

    def stop(self) -> None:
        self._halt.set()
        self.join()

    @property
    def published(self) -> Sequence[Event]:
        return self.events[: self.sent]


def replay_in_background(publisher: Publisher, settings: Settings, events: Sequence[Event], rate: float | None) -> Replay:
    """A started Replay of `events`."""
    replay = Replay(publisher, settings, events, rate)
    replay.start()
    return replay


def events_per_user(events: Iterable[Event]) -> Counter[str]:
    return Counter(e.user_id for e in events)


def lost_and_twice(expected: dict[str, int], rows: dict[str, dict[str, Any]]) -> tuple[int, int]:
    """Events never applied, and events applied more than once, from the export's per-user counts."""
    applied = {u: rows.get(u, {}).get("events_applied", 0) for u in expected}
    lost = sum(max(0, expected[u] - applied[u]) for u in expected)
    twice = sum(max(0, applied[u] - expected[u]) for u in expected)
    return lost, twice
