"""Compact, versioned bytes for a UserState: a small JSON header followed by raw float16 vectors.

JSON for the header keeps it debuggable and never executable (no pickle); orjson, because a
worker encodes and decodes a state for every user of every batch. Vectors are stored as
float16 with a power-of-two exponent each (models.vectors): exact for every state `apply_event`
produces, since it rounds to the same representation. RS1 (float32) states still decode.
"""

from __future__ import annotations

import struct

import numpy as np
import orjson

from models.interest import UserState
from models.vectors import from_half, to_half

MAGIC = b"RS2"
_MAGIC_F32 = b"RS1"
_HEADER_LEN = struct.Struct(">I")


class StateDecodeError(ValueError):
    """Stored bytes are not a recstream user state (corrupt, or written by an incompatible version)."""


def encode_state(state: UserState) -> bytes:
    header = {
        "dim": int(state.long.shape[0]),
        "last_ts": state.last_ts,
        "events_applied": state.events_applied,
        "last_event_id": state.last_event_id,
        "last_offset": state.last_offset,
        "recent": [list(pair) for pair in state.recent],
        "excluded": list(state.excluded),
        "last_query": state.last_query,
        "has_query_vec": state.query_vec is not None,
        "searching": state.searching,
        "digest": format(state.applied_digest, "x"),
    }
    if state.rekeyed:
        header["rekeyed"] = [list(pair) for pair in state.rekeyed]
    if state.shown:
        header["shown"] = list(state.shown)
    vectors = [state.long, state.short] + ([state.query_vec] if state.query_vec is not None else [])
    halves = [to_half(v) for v in vectors]
    header["exponents"] = [e for _, e in halves]
    head = orjson.dumps(header)
    return b"".join([MAGIC, _HEADER_LEN.pack(len(head)), head, *(h.astype("<f2").tobytes() for h, _ in halves)])


def _strings(value: object, name: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise StateDecodeError(f"user state field {name!r} is not a list of strings")
    return tuple(value)


def decode_state(data: bytes) -> UserState:
    half = data.startswith(MAGIC)
    if not half and not data.startswith(_MAGIC_F32):
        raise StateDecodeError("user state does not start with the RS2 (or RS1) marker")
    try:
        (head_len,) = _HEADER_LEN.unpack_from(data, len(MAGIC))
        start = len(MAGIC) + _HEADER_LEN.size
        header = orjson.loads(data[start : start + head_len])
        dim = int(header["dim"])
        body = np.frombuffer(data, dtype="<f2" if half else "<f4", offset=start + head_len)
        n_vecs = 3 if header["has_query_vec"] else 2
        if body.shape[0] != n_vecs * dim:
            raise StateDecodeError(f"user state holds {body.shape[0]} floats, expected {n_vecs * dim}")
        rows = body.reshape(n_vecs, dim)
        if half:
            exponents = [int(e) for e in header["exponents"]]
            vecs = np.stack([from_half(rows[i], exponents[i]) for i in range(n_vecs)])
        else:
            vecs = rows.astype(np.float32)
        return UserState(
            long=vecs[0].copy(),
            short=vecs[1].copy(),
            last_ts=int(header["last_ts"]),
            events_applied=int(header["events_applied"]),
            last_event_id=str(header["last_event_id"]),
            last_offset=int(header["last_offset"]),
            recent=tuple((str(a), str(b)) for a, b in header["recent"]),
            excluded=_strings(header["excluded"], "excluded"),
            last_query=header["last_query"],
            query_vec=vecs[2].copy() if n_vecs == 3 else None,
            searching=bool(header.get("searching", False)),
            applied_digest=int(header.get("digest", "0"), 16),
            rekeyed=tuple((int(p), int(o)) for p, o in header.get("rekeyed", ())),
            shown=_strings(header.get("shown", []), "shown"),
        )
    except (KeyError, ValueError, TypeError, OverflowError, RecursionError, struct.error) as exc:
        if isinstance(exc, StateDecodeError):
            raise
        raise StateDecodeError(f"user state is corrupt: {exc}") from exc
