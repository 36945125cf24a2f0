"""`recstream state export`: every user's state as JSON Lines, read from the users table's changelog.

The changelog topic is the durable copy of the table (RocksDB is a cache of it), so reading it to
its end gives the state every worker would recover, works beside running workers, and needs no
access to their disks. The last record per key wins; a tombstone (erased user) removes the user.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from models.interest import UserState
from models.state_codec import StateDecodeError, decode_state
from streams.kafka.topics import changelog_topic
from streams.kafka.watching import scan_to_end
from streams.settings import Settings

def state_json(user_id: str, state: UserState) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "events_applied": state.events_applied,
        "last_event_id": state.last_event_id,
        "last_offset": state.last_offset,
        "last_ts": state.last_ts,
        "recent": [list(pair) for pair in state.recent],
        "excluded": list(state.excluded),
        "last_query": state.last_query,
        "long": [float(x) for x in state.long],
        "short": [float(x) for x in state.short],
        "applied_digest": format(state.applied_digest, "x"),
    }


def latest_states(settings: Settings, timeout: float = 60.0) -> Iterator[tuple[str, UserState]]:
    """(user id, state) for every user in the changelog, sorted by user id."""
    latest: dict[bytes, bytes | None] = {}
    for msg in scan_to_end(settings, changelog_topic(settings), timeout):
        latest[msg.key()] = msg.value()
    for key in sorted(k for k, v in latest.items() if v is not None):
        raw = latest[key]
        assert raw is not None
        try:
            yield key.decode("utf-8"), decode_state(raw)
        except StateDecodeError as exc:
            raise StateDecodeError(f"user {key!r} in {changelog_topic(settings)}: {exc}") from exc


def export_states(settings: Settings, out: TextIO, timeout: float = 60.0) -> int:
    n = 0
    for user_id, state in latest_states(settings, timeout):
        out.write(json.dumps(state_json(user_id, state), separators=(",", ":")) + "\n")
        n += 1
    return n


def export_to_file(settings: Settings, path: Path, timeout: float = 60.0) -> int:
    """Written to a temporary file and renamed, so a reader never sees half an export."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as fh:
        n = export_states(settings, fh, timeout)
    tmp.replace(path)
    return n
