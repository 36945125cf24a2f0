"""What every scenario needs: its own topics, a background replay, and counting what was applied."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from models.interest import digest_of
from models.state_codec import StateDecodeError, decode_state
from schemas.records import Event
from streams.kafka.producing import Publisher, paced, publish_event
from streams.kafka.topics import changelog_topic
from streams.kafka.watching import scan_to_end
from streams.lab.children import die_with_parent
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


def export_states(env: dict[str, str], out: Path, timeout: float = 600.0) -> dict[str, dict[str, Any]]:
    """`recstream state export` as a user runs it, beside the running worker. A soak's changelog
    holds hundreds of MB, read while the workers still write: minutes on two busy cores."""
    proc = subprocess.run([sys.executable, "-m", "streams.cli", "state", "export", "--out", str(out),
                           "--timeout", str(timeout)], env=env, capture_output=True, text=True, timeout=timeout + 60,
                          preexec_fn=die_with_parent())
    if proc.returncode != 0:
        raise RuntimeError(f"recstream state export failed: {proc.stderr.strip()}")
    return {row["user_id"]: row for row in map(json.loads, out.read_text().splitlines())}


def wait_for_export(
    env: dict[str, str], out: Path, done: Callable[[dict[str, dict[str, Any]]], bool], timeout: float
) -> dict[str, dict[str, Any]]:
    """Exports every 2 s until `done(rows)` holds or the timeout passes; returns the last export.
    An export that cannot finish within what is left of the timeout (30 s at least) raises."""
    deadline = time.monotonic() + timeout
    while True:
        rows = export_states(env, out, timeout=max(30.0, deadline - time.monotonic()))
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
    env: dict[str, str], out: Path, sent: Mapping[str, Sequence[str]], timeout: float
) -> dict[str, dict[str, Any]]:
    """Until every user has at least as many events applied as were sent to them."""
    return wait_for_export(
        env, out, lambda rows: all(rows.get(u, {}).get("events_applied", 0) >= len(ids) for u, ids in sent.items()),
        timeout,
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


def events_per_user(events: Iterable[Event]) -> dict[str, list[str]]:
    """Each user's event ids, in the order they were sent."""
    out: dict[str, list[str]] = {}
    for e in events:
        out.setdefault(e.user_id, []).append(e.event_id)
    return out


def lost_and_twice(sent: Mapping[str, Sequence[str]], rows: dict[str, dict[str, Any]]) -> tuple[int, int]:
    """Events never applied, and events applied more than once, per event id.

    A state's `events_applied` counts its events and its `applied_digest` sums a hash of each
    applied event id: both must match the events sent to that user. Counts alone would let one
    lost and one doubled event of the same user cancel out; when the counts agree but the digest
    does not, that is (at least) one lost and one applied twice.
    """
    lost = twice = 0
    for user, ids in sent.items():
        row = rows.get(user, {})
        applied = int(row.get("events_applied", 0))
        short, over = max(0, len(ids) - applied), max(0, applied - len(ids))
        if short == over == 0 and int(row.get("applied_digest", "0"), 16) != digest_of(ids):
            short = over = 1
        lost += short
        twice += over
    return lost, twice


def changelog_regressions(settings: Settings, limit: int = 20) -> list[str]:
    """Records of the users-table changelog that go back in a user's history: fewer events applied
    than the record before it for the same user, with no erase between. The worker never writes
    one (a user's states are produced in order by one idempotent producer), so each is a record the
    broker stored twice or out of order; the export and Faust's recovery would take it as current."""
    last: dict[bytes, int] = {}
    found: list[str] = []
    for msg in scan_to_end(settings, changelog_topic(settings), timeout=300):
        key = msg.key()
        if msg.value() is None:
            last.pop(key, None)
            continue
        try:
            applied = decode_state(msg.value()).events_applied
        except StateDecodeError:
            continue
        if applied < last.get(key, -1) and len(found) < limit:
            found.append(f"{key.decode('utf-8', 'replace')} partition {msg.partition()} offset {msg.offset()}: "
                         f"{applied} events after {last[key]}")
        last[key] = applied
    return found
