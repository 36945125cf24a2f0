"""Compact, versioned bytes for a UserState: a small JSON header followed by raw float32 vectors.

JSON for the header keeps it debuggable and never executable (no pickle); raw floats keep the
vectors exact and cheap to decode.
"""

from __future__ import annotations

import json
import struct

import numpy as np

from models.interest import UserState

MAGIC = b"RS1"
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
        "excluded": sorted(state.excluded),
        "last_query": state.last_query,
        "has_query_vec": state.query_vec is not None,
        "searching": state.searching,
    }
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    parts = [MAGIC, _HEADER_LEN.pack(len(head)), head, state.long.astype("<f4").tobytes(), state.short.astype("<f4").tobytes()]
    if state.query_vec is not None:
        parts.append(state.query_vec.astype("<f4").tobytes())
    return b"".join(parts)


def decode_state(data: bytes) -> UserState:
    if not data.startswith(MAGIC):
        raise StateDecodeError("user state does not start with the RS1 marker")
    try:
        (head_len,) = _HEADER_LEN.unpack_from(data, len(MAGIC))
        start = len(MAGIC) + _HEADER_LEN.size
        header = json.loads(data[start : start + head_len])
        dim = int(header["dim"])
        body = np.frombuffer(data, dtype="<f4", offset=start + head_len)
        n_vecs = 3 if header["has_query_vec"] else 2
        if body.shape[0] != n_vecs * dim:
            raise StateDecodeError(f"user state holds {body.shape[0]} floats, expected {n_vecs * dim}")
        vecs = body.astype(np.float32).reshape(n_vecs, dim)
        return UserState(
            long=vecs[0].copy(),
            short=vecs[1].copy(),
            last_ts=int(header["last_ts"]),
            events_applied=int(header["events_applied"]),
            last_event_id=str(header["last_event_id"]),
            last_offset=int(header["last_offset"]),
            recent=tuple((str(a), str(b)) for a, b in header["recent"]),
            excluded=frozenset(header["excluded"]),
            last_query=header["last_query"],
            query_vec=vecs[2].copy() if n_vecs == 3 else None,
            searching=bool(header.get("searching", False)),
        )
    except (KeyError, ValueError, TypeError, OverflowError, RecursionError, struct.error) as exc:
        if isinstance(exc, StateDecodeError):
            raise
        raise StateDecodeError(f"user state is corrupt: {exc}") from exc
