"""UserState <-> bytes (models.state_codec): exact round trips, and only StateDecodeError on bad input."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.interest import UserState, apply_event
from models.params import CoreParams
from models.state_codec import MAGIC, StateDecodeError, decode_state, encode_state
from models.vectors import from_half, stored, to_half
from schemas.records import Event, EventType

_ids = st.text(min_size=1, max_size=12)  # any unicode (non-ASCII goes through JSON escapes)
# Interest sums never come near float32's limit; stored form is defined below 2**127.
_f32 = st.floats(min_value=-2.0**100, max_value=2.0**100, width=32)


@st.composite
def user_states(draw: st.DrawFn) -> UserState:
    dim = draw(st.integers(min_value=1, max_value=12))
    # States hold what apply_event produces: vectors already rounded to their stored form.
    vec = st.lists(_f32, min_size=dim, max_size=dim).map(lambda xs: stored(np.asarray(xs, dtype=np.float32)))
    kinds = st.sampled_from([k.value for k in EventType if k not in (EventType.SEARCH, EventType.ERASE)])
    has_q = draw(st.booleans())
    return UserState(
        long=draw(vec),
        short=draw(vec),
        last_ts=draw(st.integers(min_value=0, max_value=2**63)),
        events_applied=draw(st.integers(min_value=0, max_value=2**40)),
        last_event_id=draw(st.text(max_size=20)),
        last_offset=draw(st.integers(min_value=-1, max_value=2**62)),
        recent=tuple(draw(st.lists(st.tuples(_ids, kinds), max_size=6))),
        excluded=tuple(draw(st.lists(_ids, max_size=6, unique=True))),
        last_query=draw(st.text(max_size=40)) if has_q else draw(st.none() | st.text(max_size=5)),
        query_vec=draw(vec) if has_q else None,
    )


def assert_states_equal(a: UserState, b: UserState) -> None:
    for name in ("long", "short"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype == np.float32
        assert x.tobytes() == y.tobytes(), name  # bit-exact, -0.0 included
    assert (a.query_vec is None) == (b.query_vec is None)
    if a.query_vec is not None:
        assert a.query_vec.tobytes() == b.query_vec.astype(np.float32).tobytes()
    for name in ("last_ts", "events_applied", "last_event_id", "last_offset", "recent", "excluded", "last_query"):
        assert getattr(a, name) == getattr(b, name), name


@settings(max_examples=150, deadline=None)
@given(state=user_states())
def test_round_trip_is_exact(state: UserState) -> None:
    data = encode_state(state)
    assert data.startswith(MAGIC)
    back = decode_state(data)
    assert_states_equal(back, state)
    # Stable: re-encoding the decoded state gives the same bytes.
    assert encode_state(back) == data


def test_round_trip_of_a_real_state() -> None:
    rng = np.random.default_rng(3)
    params = CoreParams()
    s = UserState.empty(8)
    for n, kind in enumerate([EventType.CLICK, EventType.PURCHASE, EventType.DISLIKE, EventType.SEARCH]):
        v = rng.normal(size=8).astype(np.float32)
        if kind is EventType.SEARCH:
            ev = Event(event_id=f"é{n}", user_id="ü", type=kind, query="ロボット 映画", ts=n)
            s = apply_event(s, ev, params, query_vec=v, offset=n)
        else:
            ev = Event(event_id=f"é{n}", user_id="ü", type=kind, item_id=f"itém-{n}-🎬", ts=n)
            s = apply_event(s, ev, params, item_vec=v, offset=n)
    back = decode_state(encode_state(s))
    assert_states_equal(back, s)
    assert set(back.excluded) == {"itém-1-🎬", "itém-2-🎬"}
    assert back.last_query == "ロボット 映画"
    # Decoded arrays are writable copies, not views into the message buffer.
    assert back.long.flags.writeable and back.short.flags.writeable


def test_empty_state_round_trip() -> None:
    s = UserState.empty(384)
    assert_states_equal(decode_state(encode_state(s)), s)


# -- corrupt input ----------------------------------------------------------------------------


def _decode_or_reject(data: bytes) -> None:
    """Either a state or StateDecodeError: any other exception type fails the test."""
    try:
        state = decode_state(data)
    except StateDecodeError:
        return
    assert isinstance(state, UserState)
    assert state.long.shape == state.short.shape


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"RS",
        b"RS1",
        b"RS1\x00\x00",
        b"XYZ" + b"\x00" * 20,
        b"RS9" + encode_state(UserState.empty(2))[3:],
        MAGIC + struct.pack(">I", 1000) + b"{}",
        MAGIC + struct.pack(">I", 2) + b"{}",
        MAGIC + struct.pack(">I", 2) + b"[]",
        MAGIC + struct.pack(">I", 4) + b"null",
        MAGIC + struct.pack(">I", 3) + b"\xff\xfe\xfd",
    ],
)
def test_garbage_is_rejected_with_state_decode_error(data: bytes) -> None:
    with pytest.raises(StateDecodeError):
        decode_state(data)


def test_truncated_and_padded_states_are_rejected() -> None:
    data = encode_state(UserState.empty(4))
    for cut in range(len(data)):
        with pytest.raises(StateDecodeError):
            decode_state(data[:cut])
    with pytest.raises(StateDecodeError):
        decode_state(data + b"\x00\x00\x00\x00")
    with pytest.raises(StateDecodeError):
        decode_state(data + b"\x00")


def _with_header(header: dict | list | str, body: bytes = b"") -> bytes:
    head = json.dumps(header).encode()
    return MAGIC + struct.pack(">I", len(head)) + head + body


_GOOD_HEADER = {
    "dim": 1,
    "last_ts": 0,
    "events_applied": 0,
    "last_event_id": "",
    "last_offset": -1,
    "recent": [],
    "excluded": [],
    "last_query": None,
    "has_query_vec": False,
    "exponents": [0, 0],
}


@pytest.mark.parametrize(
    "change",
    [
        {"dim": "x"},
        {"dim": None},
        {"dim": 2},
        {"dim": -2},
        {"has_query_vec": True},
        {"recent": [["a"]]},
        {"recent": 5},
        {"excluded": [[1]]},
        {"last_ts": "soon"},
        {"last_ts": None},
    ],
)
def test_bad_header_fields_are_rejected(change: dict) -> None:
    assert decode_state(_with_header(_GOOD_HEADER, b"\x00" * 4)).long.shape == (1,)
    with pytest.raises(StateDecodeError):
        decode_state(_with_header({**_GOOD_HEADER, **change}, b"\x00" * 4))


@pytest.mark.parametrize("missing", sorted(_GOOD_HEADER))
def test_missing_header_field_is_rejected(missing: str) -> None:
    header = {k: v for k, v in _GOOD_HEADER.items() if k != missing}
    with pytest.raises(StateDecodeError):
        decode_state(_with_header(header, b"\x00" * 4))


def test_deeply_nested_header_is_rejected() -> None:
    head = b"[" * 100_000
    with pytest.raises(StateDecodeError):
        decode_state(MAGIC + struct.pack(">I", len(head)) + head)


def test_infinite_header_number_is_rejected() -> None:
    head = json.dumps(_GOOD_HEADER).replace('"last_ts": 0', '"last_ts": 1e999').encode()
    assert b"1e999" in head
    with pytest.raises(StateDecodeError):
        decode_state(MAGIC + struct.pack(">I", len(head)) + head + b"\x00" * 4)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200))
def test_arbitrary_bytes_never_raise_another_exception(data: bytes) -> None:
    _decode_or_reject(data)
    _decode_or_reject(MAGIC + data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(state=user_states(), data=st.data())
def test_mutated_encodings_never_raise_another_exception(state: UserState, data: st.DataObject) -> None:
    raw = bytearray(encode_state(state))
    mode = data.draw(st.sampled_from(["truncate", "flip", "insert"]))
    if mode == "truncate":
        raw = raw[: data.draw(st.integers(min_value=0, max_value=len(raw) - 1))]
    elif mode == "flip":
        for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
            pos = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
            raw[pos] = data.draw(st.integers(min_value=0, max_value=255))
    else:
        pos = data.draw(st.integers(min_value=0, max_value=len(raw)))
        raw[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
    _decode_or_reject(bytes(raw))


def test_state_decode_error_is_a_value_error() -> None:
    # Callers (the table codec) catch ValueError; keep the hierarchy.
    assert issubclass(StateDecodeError, ValueError)


@settings(max_examples=300, deadline=None)
@given(xs=st.lists(st.floats(min_value=-2.0**100, max_value=2.0**100, width=32), min_size=1, max_size=16))
def test_half_storage_is_idempotent_and_close(xs: list[float]) -> None:
    v = np.asarray(xs, dtype=np.float32)
    once = stored(v)
    assert stored(once).tobytes() == once.tobytes(), "storing a stored vector changes nothing"
    half, exponent = to_half(v)
    assert half.dtype == np.float16 and np.all(np.abs(half) < 1.0)
    np.testing.assert_array_equal(from_half(half, exponent), once)
    # 11 significant bits relative to the largest component.
    assert np.all(np.abs(once - v) <= np.max(np.abs(v)) * 2.0**-11 + 1e-45)


def test_an_old_float32_state_still_decodes() -> None:
    s = UserState(long=np.array([0.1, -0.2], np.float32), short=np.array([0.3, 0.4], np.float32), events_applied=3)
    header = {**_GOOD_HEADER, "dim": 2, "events_applied": 3}
    header.pop("exponents")
    head = json.dumps(header).encode()
    data = b"RS1" + struct.pack(">I", len(head)) + head + s.long.astype("<f4").tobytes() + s.short.astype("<f4").tobytes()
    back = decode_state(data)
    assert back.long.tobytes() == s.long.tobytes() and back.events_applied == 3


def test_digest_and_rekeyed_origins_round_trip_and_old_rows_default_them() -> None:
    import dataclasses

    s = UserState(long=np.array([0.5, -0.25], np.float32), short=np.array([0.125, 1.0], np.float32),
                  events_applied=2, applied_digest=2**64 - 3, rekeyed=((0, 12), (3, 7)))
    back = decode_state(encode_state(s))
    assert back.applied_digest == 2**64 - 3 and back.rekeyed == ((0, 12), (3, 7))
    # A row written before these fields existed (no "digest", no "rekeyed" in its header) decodes with none.
    data = encode_state(dataclasses.replace(s, rekeyed=()))
    (n,) = struct.unpack_from(">I", data, len(MAGIC))
    start = len(MAGIC) + 4
    header = json.loads(data[start : start + n])
    del header["digest"]
    head = json.dumps(header).encode()
    old = MAGIC + struct.pack(">I", len(head)) + head + data[start + n :]
    plain = decode_state(old)
    assert plain.applied_digest == 0 and plain.rekeyed == () and plain.events_applied == 2


def test_the_shown_list_round_trips_and_old_rows_have_none() -> None:
    s = UserState(long=np.array([0.5, -0.25], np.float32), short=np.array([0.125, 1.0], np.float32),
                  events_applied=1, shown=("b", "a", "c"))
    assert decode_state(encode_state(s)).shown == ("b", "a", "c")
    bare = encode_state(UserState(long=s.long, short=s.short, events_applied=1))
    assert b"shown" not in bare and decode_state(bare).shown == ()
