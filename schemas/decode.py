"""Bytes off the wire to validated records, with a machine-readable reason when that fails.

Pure and strict on purpose: whatever cannot be decoded here goes to the dead-letter topic with
its reason instead of reaching the state.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from schemas.records import Event, Item

# Reasons are part of the dead-letter contract: dashboards group by them.
TOO_LARGE = "too_large"
INVALID_JSON = "invalid_json"
SCHEMA = "schema_violation"
QUERY_TOO_LONG = "query_too_long"
TS_OUT_OF_RANGE = "ts_out_of_range"
WRONG_PARTITION_KEY = "key_mismatch"
# Not decoding failures of a message, but of the worker with one: a user's stored state that does
# not decode (its bytes are quarantined, the user starts afresh), and a valid event that the
# pipeline failed on every time while the rest of its batch went through.
STATE_UNREADABLE = "state_unreadable"
PROCESSING_FAILED = "processing_failed"
# Every reason a message of each kind can be dead-lettered for (the worker exports each at 0 from its start).
EVENT_REASONS = (TOO_LARGE, INVALID_JSON, SCHEMA, QUERY_TOO_LONG, TS_OUT_OF_RANGE, PROCESSING_FAILED)
ITEM_REASONS = (TOO_LARGE, INVALID_JSON, SCHEMA)


class InvalidMessage(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


# 1990-01-01: older "event times" are bugs (a 0, seconds taken for milliseconds), not history.
MIN_TS_MS = 631_152_000_000


@dataclass(frozen=True)
class Limits:
    """What a worker accepts; the defaults are the settings' defaults (RECSTREAM_MAX_*, RECSTREAM_EVENT_TS_*)."""

    max_bytes: int = 64 * 1024
    max_query_chars: int = 1_000
    # A time far off would freeze a user's decay (a future one) or t0 of the co-visitation store.
    min_ts_ms: int = MIN_TS_MS
    max_future_ms: int = 86_400_000


def _validate(model: type[Event] | type[Item], data: bytes | None, limits: Limits) -> Any:
    if data is None:
        raise InvalidMessage(INVALID_JSON, "message has no value")
    if len(data) > limits.max_bytes:
        raise InvalidMessage(TOO_LARGE, f"{len(data)} bytes is over the {limits.max_bytes}-byte limit")
    if b"NaN" in data or b"Infinity" in data:
        _reject_non_json_numbers(data)
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        if any(e["type"] == "json_invalid" for e in errors):
            raise InvalidMessage(INVALID_JSON, errors[0]["msg"][:300]) from None
        detail = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(value)'}: {e['msg']}" for e in errors[:5])
        raise InvalidMessage(SCHEMA, detail[:500]) from None


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _reject_non_json_numbers(data: bytes) -> None:
    """NaN and Infinity are not JSON (RFC 8259), but pydantic's parser accepts them; the slow path is rare."""
    try:
        json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise InvalidMessage(INVALID_JSON, str(exc)[:300]) from None


def decode_event(data: bytes | None, limits: Limits = Limits(), now_ms: int | None = None) -> Event:
    """`now_ms` (default: the clock) bounds how far in the future an event time may be."""
    event = _validate(Event, data, limits)
    if event.query is not None and len(event.query) > limits.max_query_chars:
        raise InvalidMessage(QUERY_TOO_LONG, f"query has {len(event.query)} characters, limit {limits.max_query_chars}")
    latest = (int(time.time() * 1000) if now_ms is None else now_ms) + limits.max_future_ms
    if not limits.min_ts_ms <= event.ts <= latest:
        raise InvalidMessage(
            TS_OUT_OF_RANGE, f"ts {event.ts} is outside [{limits.min_ts_ms}, {latest}] (epoch milliseconds expected)"
        )
    return event


def decode_item(data: bytes | None, limits: Limits = Limits()) -> Item:
    return _validate(Item, data, limits)


def dead_letter_value(
    reason: str, detail: str, original: bytes | None, *, topic: str, partition: int, offset: int
) -> bytes:
    """The dead-letter record: why it failed, where it came from, and the original bytes (base64)."""
    doc = {
        "reason": reason,
        "detail": detail,
        "source": {"topic": topic, "partition": partition, "offset": offset},
        "original_b64": base64.b64encode(original).decode("ascii") if original is not None else None,
        "failed_at": int(time.time() * 1000),
    }
    return json.dumps(doc, separators=(",", ":")).encode("utf-8")
