"""Wire bytes -> records (schemas.decode): the reason code of every failure, and the dead-letter record."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.decode import (
    INVALID_JSON,
    QUERY_TOO_LONG,
    SCHEMA,
    TOO_LARGE,
    TS_OUT_OF_RANGE,
    InvalidMessage,
    Limits,
    dead_letter_value,
    decode_event,
    decode_item,
)
from schemas.records import Event, EventType, Item

T = 1_700_000_000_000  # a plausible event time (2023-11-14)
CLICK = {"event_id": "e1", "user_id": "u1", "type": "click", "item_id": "m1", "ts": T}


def _raw(doc: object) -> bytes:
    return json.dumps(doc).encode()


def _reason(data: bytes | None, limits: Limits = Limits(), *, item: bool = False) -> str:
    with pytest.raises(InvalidMessage) as info:
        (decode_item if item else decode_event)(data, limits)
    assert info.value.detail, "a dead letter needs a human-readable detail"
    assert str(info.value).startswith(info.value.reason + ": ")
    return info.value.reason


def test_reason_codes_are_the_contract() -> None:
    assert (TOO_LARGE, INVALID_JSON, SCHEMA, QUERY_TOO_LONG, TS_OUT_OF_RANGE) == (
        "too_large", "invalid_json", "schema_violation", "query_too_long", "ts_out_of_range",
    )
    assert issubclass(InvalidMessage, ValueError)


# -- valid ------------------------------------------------------------------------------------


def test_valid_events_decode() -> None:
    ev = decode_event(_raw(CLICK))
    assert ev == Event(event_id="e1", user_id="u1", type=EventType.CLICK, item_id="m1", ts=1_700_000_000_000)
    search = decode_event(_raw({"event_id": "e2", "user_id": "u1", "type": "search", "query": "space horror", "ts": T}))
    assert search.type is EventType.SEARCH and search.query == "space horror" and search.item_id is None
    # Unicode, and a query exactly at the limit.
    limits = Limits(max_query_chars=10)
    at_limit = decode_event(_raw({"event_id": "é", "user_id": "ü", "type": "search", "query": "ロ" * 10, "ts": T}), limits)
    assert at_limit.query == "ロ" * 10


def test_valid_items_decode() -> None:
    item = decode_item(_raw({"item_id": "m1", "op": "upsert", "title": "Alien (1979)", "categories": ["Horror", "Sci-Fi"]}))
    assert item == Item(item_id="m1", title="Alien (1979)", categories=["Horror", "Sci-Fi"], op="upsert")
    assert item.text() == "Alien (1979). Genres: Horror, Sci-Fi"
    assert decode_item(_raw({"item_id": "m1", "op": "delete"})).op == "delete"


# -- too large --------------------------------------------------------------------------------


def test_too_large() -> None:
    limits = Limits(max_bytes=100)
    ok = _raw({**CLICK, "event_id": "x" * 10})
    assert len(ok) <= 100
    decode_event(ok, limits)
    big = _raw({**CLICK, "event_id": "x" * 200})
    assert _reason(big, limits) == TOO_LARGE
    # Size is checked before parsing: oversized garbage is too_large, not invalid_json.
    assert _reason(b"\xff" * 101, limits) == TOO_LARGE
    assert _reason(b"x" * (64 * 1024 + 1)) == TOO_LARGE
    assert _reason(b"x" * 101, limits, item=True) == TOO_LARGE


def test_exactly_max_bytes_is_not_too_large() -> None:
    doc = _raw(CLICK)
    decode_event(doc, Limits(max_bytes=len(doc)))
    assert _reason(doc, Limits(max_bytes=len(doc) - 1)) == TOO_LARGE


# -- invalid json -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b"{",
        b'{"event_id": "e1",}',
        b"\xff\xfe",
        b'{"event_id": "\xff\xfe", "user_id": "u", "type": "click", "item_id": "m", "ts": T}',
        _raw(CLICK) + b" trailing",
        b"[" * 10_000 + b"]" * 10_000,
        b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
        b"'single quotes'",
    ],
)
def test_invalid_json(data: bytes) -> None:
    assert _reason(data) == INVALID_JSON
    assert _reason(data, item=True) == INVALID_JSON


def test_none_value_is_invalid_json() -> None:
    with pytest.raises(InvalidMessage) as info:
        decode_event(None)
    assert info.value.reason == INVALID_JSON
    assert "no value" in info.value.detail
    assert _reason(None, item=True) == INVALID_JSON


@pytest.mark.parametrize(
    "data",
    [
        b'{"event_id": "e1", "user_id": "u1", "type": "click", "item_id": "m1", "ts": NaN}',
        b'{"event_id": "e1", "user_id": "u1", "type": "click", "item_id": "m1", "ts": Infinity}',
        b'{"event_id": "e1", "user_id": "u1", "type": "click", "item_id": "m1", "ts": -Infinity}',
        b"NaN",
    ],
)
def test_nan_and_infinity_literals_are_invalid_json(data: bytes) -> None:
    assert _reason(data) == INVALID_JSON


def test_nan_and_infinity_inside_strings_are_fine() -> None:
    doc = {"event_id": "NaN", "user_id": "Infinity", "type": "search", "query": "NaN -Infinity and beyond", "ts": T}
    ev = decode_event(_raw(doc))
    assert ev.query == "NaN -Infinity and beyond" and ev.event_id == "NaN"
    item = decode_item(_raw({"item_id": "m", "op": "upsert", "title": "Infinity Pool (2023)", "categories": ["NaN"]}))
    assert item.title == "Infinity Pool (2023)"
    # Still strict about everything else in such a message.
    assert _reason(_raw({**doc, "ts": "NaN"})) == SCHEMA
    assert _reason(_raw(doc)[:-1]) == INVALID_JSON


def test_nan_and_infinity_literals_are_never_accepted() -> None:
    # Whatever the reason code, such a message must not decode.
    for literal in (b"NaN", b"Infinity", b"-Infinity"):
        data = b'{"event_id": "e1", "user_id": "u1", "type": "click", "item_id": "m1", "ts": ' + literal + b"}"
        assert _reason(data) in (INVALID_JSON, SCHEMA)


# -- schema violations ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "doc",
    [
        {**CLICK, "ts": "1700000000000"},
        {**CLICK, "ts": 1.5},
        {**CLICK, "ts": -1},
        {**CLICK, "ts": True},
        {**CLICK, "user_id": 42},
        {**CLICK, "type": "view"},
        {**CLICK, "type": "CLICK"},
        {**CLICK, "extra": 1},
        {k: v for k, v in CLICK.items() if k != "ts"},
        {k: v for k, v in CLICK.items() if k != "item_id"},
        {**CLICK, "item_id": None},
        {**CLICK, "event_id": ""},
        {"event_id": "e", "user_id": "u", "type": "search", "ts": T},
        {"event_id": "e", "user_id": "u", "type": "search", "query": "", "ts": T},
        {},
        [],
        "a string",
        5,
        None,
    ],
)
def test_schema_violation(doc: object) -> None:
    assert _reason(_raw(doc)) == SCHEMA


def test_schema_violation_detail_names_the_field() -> None:
    with pytest.raises(InvalidMessage) as info:
        decode_event(_raw({**CLICK, "ts": "soon"}))
    assert "ts" in info.value.detail
    assert len(info.value.detail) <= 500


def test_item_schema_violations() -> None:
    assert _reason(_raw({"item_id": "m1", "op": "upsert"}), item=True) == SCHEMA
    assert _reason(_raw({"item_id": "m1", "op": "replace", "title": "t"}), item=True) == SCHEMA
    assert _reason(_raw({"item_id": "m1", "op": "upsert", "title": "t", "categories": "Horror"}), item=True) == SCHEMA
    assert _reason(_raw(CLICK), item=True) == SCHEMA


# -- query too long ---------------------------------------------------------------------------


def test_query_too_long() -> None:
    limits = Limits(max_query_chars=20)
    doc = {"event_id": "e", "user_id": "u", "type": "search", "query": "q" * 21, "ts": T}
    assert _reason(_raw(doc), limits) == QUERY_TOO_LONG
    assert _reason(_raw({**doc, "query": "ü" * 21}), limits) == QUERY_TOO_LONG  # characters, not bytes
    decode_event(_raw({**doc, "query": "ü" * 20}), limits)
    # Default limit is 1000 characters.
    assert _reason(_raw({**doc, "query": "q" * 1001})) == QUERY_TOO_LONG
    decode_event(_raw({**doc, "query": "q" * 1000}))
    # A non-search event's query is limited too.
    assert _reason(_raw({**CLICK, "query": "q" * 21}), limits) == QUERY_TOO_LONG


# -- event time out of range ------------------------------------------------------------------


def test_event_times_far_in_the_past_or_future_are_out_of_range() -> None:
    now = 1_800_000_000_000
    limits = Limits(min_ts_ms=1_000_000, max_future_ms=60_000)
    decode_event(_raw({**CLICK, "ts": 1_000_000}), limits, now_ms=now)
    decode_event(_raw({**CLICK, "ts": now + 60_000}), limits, now_ms=now)
    for ts in (0, 999_999, now + 60_001, 10**40):
        assert _ts_reason({**CLICK, "ts": ts}, limits, now) == TS_OUT_OF_RANGE
    # Defaults: seconds mistaken for milliseconds land in 1970; the year 3000 is in the future.
    assert _ts_reason({**CLICK, "ts": 1_700_000_000}, Limits(), None) == TS_OUT_OF_RANGE
    assert _ts_reason({**CLICK, "ts": 32_503_680_000_000}, Limits(), None) == TS_OUT_OF_RANGE


def _ts_reason(doc: dict, limits: Limits, now: int | None) -> str:
    with pytest.raises(InvalidMessage) as info:
        decode_event(_raw(doc), limits, now_ms=now)
    assert "epoch milliseconds" in info.value.detail
    return info.value.reason


# -- dead letters -----------------------------------------------------------------------------


def test_dead_letter_value_shape() -> None:
    original = b'{"broken": '
    value = dead_letter_value(INVALID_JSON, "EOF while parsing", original, topic="events", partition=3, offset=1234)
    doc = json.loads(value)
    assert doc["reason"] == INVALID_JSON
    assert doc["detail"] == "EOF while parsing"
    assert doc["source"] == {"topic": "events", "partition": 3, "offset": 1234}
    assert base64.b64decode(doc["original_b64"], validate=True) == original
    assert isinstance(doc["failed_at"], int) and doc["failed_at"] > 1_600_000_000_000


def test_dead_letter_value_without_original() -> None:
    doc = json.loads(dead_letter_value(INVALID_JSON, "message has no value", None, topic="events", partition=0, offset=0))
    assert doc["original_b64"] is None
    assert doc["source"] == {"topic": "events", "partition": 0, "offset": 0}


@settings(max_examples=200, deadline=None)
@given(
    original=st.binary(max_size=300),
    reason=st.sampled_from([TOO_LARGE, INVALID_JSON, SCHEMA, QUERY_TOO_LONG]),
    detail=st.text(max_size=50),
    topic=st.text(min_size=1, max_size=20),
    partition=st.integers(min_value=0, max_value=10_000),
    offset=st.integers(min_value=0, max_value=2**62),
)
def test_dead_letter_keeps_the_exact_original_bytes(
    original: bytes, reason: str, detail: str, topic: str, partition: int, offset: int
) -> None:
    value = dead_letter_value(reason, detail, original, topic=topic, partition=partition, offset=offset)
    assert isinstance(value, bytes)
    doc = json.loads(value.decode("utf-8"))
    assert set(doc) == {"reason", "detail", "source", "original_b64", "failed_at"}
    assert doc["reason"] == reason and doc["detail"] == detail
    assert doc["source"] == {"topic": topic, "partition": partition, "offset": offset}
    assert base64.b64decode(doc["original_b64"], validate=True) == original


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200) | st.text(max_size=100).map(str.encode))
def test_arbitrary_bytes_decode_or_fail_with_a_known_reason(data: bytes) -> None:
    for decode in (decode_event, decode_item):
        try:
            decode(data)
        except InvalidMessage as exc:
            assert exc.reason in (INVALID_JSON, SCHEMA, TOO_LARGE, QUERY_TOO_LONG, TS_OUT_OF_RANGE)
            # The failure goes to the dead-letter topic with the bytes intact.
            doc = json.loads(dead_letter_value(exc.reason, exc.detail, data, topic="t", partition=0, offset=1))
            assert base64.b64decode(doc["original_b64"]) == data
