"""Bytes a user's state costs, on real histories: what the worker stores per user, by history length.

Computed in process with the worker's own code (`apply_event`, then `encode_state`: the bytes the
users table and its changelog hold per user), so it can replay whole MovieLens users in seconds.
Item vectors are random unit vectors: a state's size depends on the history's ids and lengths, not on
the vectors' values (they are stored at a fixed width).
"""

from __future__ import annotations

import statistics
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from models.interest import UserState, apply_event
from models.params import CoreParams
from models.state_codec import encode_state
from schemas.records import Event, EventType


class _Vectors:
    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._cache: dict[str, np.ndarray] = {}

    def __call__(self, item_id: str) -> np.ndarray:
        v = self._cache.get(item_id)
        if v is None:
            rng = np.random.default_rng(zlib.crc32(item_id.encode()))
            v = rng.normal(size=self.dim).astype(np.float32)
            v = self._cache[item_id] = v / np.linalg.norm(v)
        return v


def replay(events: Sequence[Event], params: CoreParams, vectors: _Vectors) -> UserState:
    """One user's state after `events`, in order (erase events skipped)."""
    state = UserState.empty(vectors.dim)
    for offset, e in enumerate(events):
        if e.type is EventType.ERASE:
            continue
        item_vec = vectors(e.item_id) if e.item_id is not None else None
        query_vec = vectors("query:" + (e.query or "")) if e.type is EventType.SEARCH else None
        state = apply_event(state, e, params, item_vec=item_vec, query_vec=query_vec, offset=offset)
    return state


def state_sizes(
    events: Sequence[Event], lengths: Sequence[int] = (20, 200, 1_000), params: CoreParams | None = None, dim: int = 384
) -> dict[str, Any]:
    """Encoded bytes per user: over every user of `events` (whole histories), and for users of
    exactly `lengths` events (the heaviest user's history, continued with the next heaviest users'
    events re-keyed to them when no single user has that many)."""
    params = params or CoreParams()
    vectors = _Vectors(dim)
    by_user: dict[str, list[Event]] = {}
    for e in events:
        by_user.setdefault(e.user_id, []).append(e)
    whole = [len(encode_state(replay(h, params, vectors))) for h in by_user.values()]
    heaviest = [e for h in sorted(by_user.values(), key=len, reverse=True) for e in h]
    by_length = {}
    for n in lengths:
        history = [e.model_copy(update={"user_id": "heavy"}) for e in heaviest[:n]]
        by_length[str(n)] = {"events": len(history), "bytes": len(encode_state(replay(history, params, vectors)))}
    return {
        "users": len(whole),
        "events_per_user_median": statistics.median(len(h) for h in by_user.values()),
        "events_per_user_max": max(len(h) for h in by_user.values()),
        "bytes_per_user_mean": round(statistics.fmean(whole), 1),
        "bytes_per_user_median": statistics.median(whole),
        "bytes_per_user_max": max(whole),
        "by_history_length": by_length,
    }
