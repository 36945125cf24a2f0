"""Per-user interest state and the rule that updates it, one event at a time.

`apply_event` is a pure `(state, event) -> state` step: the Faust agent, the tests and the
offline evaluation call it, so there is exactly one implementation of how a user's taste moves.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from models.params import CoreParams
from models.vectors import stored
from schemas.records import Event, EventType

_EXCLUDING = (EventType.PURCHASE, EventType.DISLIKE)
# Every type but erase moves a user's interest; an erase ends the user's state instead (pipeline.step).
INTEREST_TYPES = tuple(t for t in EventType if t is not EventType.ERASE)


@dataclass(frozen=True)
class UserState:
    """Everything recstream keeps about one user.

    `long` and `short` are decayed, unnormalised sums of item (or query) vectors; only their
    direction is used for retrieval, their norm says how much evidence is behind it.
    """

    long: np.ndarray
    short: np.ndarray
    last_ts: int = 0
    events_applied: int = 0
    last_event_id: str = ""
    last_offset: int = -1
    # (item_id, event type) newest last, bounded by CoreParams.recent_items.
    recent: tuple[tuple[str, str], ...] = ()
    # Items not to recommend again: purchased or disliked, oldest first, the newest
    # CoreParams.excluded_items of them (a user's state must not grow with their history).
    excluded: tuple[str, ...] = ()
    last_query: str | None = None
    query_vec: np.ndarray | None = None
    # The newest event was a search: the list should follow the query, not the history.
    searching: bool = False
    # Sum (mod 2**64) of a 64-bit hash of every applied event id: with `events_applied` it proves
    # *which* events were applied, so a lost and a doubled event of one user cannot cancel out.
    applied_digest: int = 0
    # For events re-sent from the partition they arrived on to the user's (re-keyed): per source
    # partition, the highest source offset applied. A crash can make the re-send happen twice, at
    # two offsets of the user's partition; the second copy names a source offset already seen.
    rekeyed: tuple[tuple[int, int], ...] = ()
    # The item ids of the list last published for the user, best first: what the user was shown
    # when their next event arrives, so the online hit rate needs no other store.
    shown: tuple[str, ...] = ()

    @classmethod
    def empty(cls, dim: int) -> UserState:
        zeros = np.zeros(dim, dtype=np.float32)
        return cls(long=zeros, short=zeros.copy())


_DIGEST_MOD = 2**64


def event_digest(event_id: str) -> int:
    """A stable 64-bit hash of an event id (the same on every worker and in every check)."""
    return int.from_bytes(hashlib.blake2b(event_id.encode("utf-8"), digest_size=8).digest(), "big")


def digest_of(event_ids: Iterable[str]) -> int:
    """What `UserState.applied_digest` reads after exactly these events were applied, once each."""
    return sum(map(event_digest, event_ids)) % _DIGEST_MOD


def seen_origin(state: UserState, origin: tuple[int, int] | None) -> bool:
    """True when a re-keyed event's source position was already applied to this state."""
    if origin is None:
        return False
    partition, offset = origin
    return any(p == partition and offset <= o for p, o in state.rekeyed)


def _with_origin(rekeyed: tuple[tuple[int, int], ...], origin: tuple[int, int] | None) -> tuple[tuple[int, int], ...]:
    if origin is None:
        return rekeyed
    kept = {p: o for p, o in rekeyed}
    kept[origin[0]] = max(kept.get(origin[0], -1), origin[1])
    return tuple(sorted(kept.items()))


def decay(half_life_s: float, dt_ms: int) -> float:
    """Exponential event-time decay; out-of-order events (dt < 0) decay nothing."""
    if dt_ms <= 0:
        return 1.0
    return math.pow(0.5, (dt_ms / 1000.0) / half_life_s)


def apply_event(
    state: UserState,
    event: Event,
    params: CoreParams,
    item_vec: np.ndarray | None = None,
    query_vec: np.ndarray | None = None,
    offset: int = -1,
    origin: tuple[int, int] | None = None,
) -> UserState:
    """Fold one event into the state.

    `origin` is (partition, offset) where a re-keyed event first arrived (None for the rest).

    `item_vec` is None for an unknown (or not yet indexed) item: the event still counts and still
    excludes, it just cannot move the vectors.
    """
    if event.type is EventType.ERASE:
        raise ValueError("an erase event deletes the state; it is not folded into it (see Recommender.step)")
    dt = event.ts - state.last_ts if state.events_applied else 0
    long = state.long * np.float32(decay(params.long_half_life_s, dt))
    short = state.short * np.float32(decay(params.short_half_life_s, dt))
    weight = np.float32(params.weight(event.type))
    recent = state.recent
    excluded = state.excluded
    last_query, q_vec = state.last_query, state.query_vec

    if event.type is EventType.SEARCH:
        if query_vec is not None:
            short = short + weight * query_vec
            last_query, q_vec = event.query, stored(query_vec)
    else:
        assert event.item_id is not None
        if item_vec is not None:
            long = long + weight * item_vec
            short = short + weight * item_vec
        recent = (recent + ((event.item_id, event.type.value),))[-params.recent_items :]
        if event.type in _EXCLUDING:
            excluded = exclude_newest(excluded, event.item_id, params.excluded_items)

    return replace(
        state,
        long=stored(long),
        short=stored(short),
        last_ts=max(state.last_ts, event.ts),
        events_applied=state.events_applied + 1,
        last_event_id=event.event_id,
        last_offset=max(state.last_offset, offset),
        recent=recent,
        excluded=excluded,
        last_query=last_query,
        query_vec=q_vec,
        searching=event.type is EventType.SEARCH and query_vec is not None,
        applied_digest=(state.applied_digest + event_digest(event.event_id)) % _DIGEST_MOD,
        rekeyed=_with_origin(state.rekeyed, origin),
    )


def exclude_newest(excluded: tuple[str, ...], item_id: str, limit: int) -> tuple[str, ...]:
    """`item_id` as the newest exclusion (moved there if it was one already), the oldest dropped
    beyond `limit`."""
    kept = tuple(i for i in excluded if i != item_id) + (item_id,)
    return kept[-limit:] if limit > 0 else ()


def query_vector(state: UserState, params: CoreParams) -> np.ndarray | None:
    """The direction to search the index in: a blend of session and long-term taste.

    None when the user has no usable signal yet (only unknown items, or dislikes cancelled out).
    """
    vectors, has = query_vectors([state], params, state.long.shape[0])
    return vectors[0] if has[0] else None


def query_vectors(states: Sequence[UserState], params: CoreParams, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """`query_vector` of every state as the rows of one float32 matrix (zero where a user has no
    usable signal), and which rows have one: the ranking computes a whole batch's at once."""
    if not states:
        return np.zeros((0, dim), dtype=np.float32), np.zeros(0, dtype=bool)
    long = _unit_rows(np.stack([s.long for s in states]).astype(np.float32))
    short = _unit_rows(np.stack([s.short for s in states]).astype(np.float32))
    has_long, has_short = long.any(axis=1), short.any(axis=1)
    w = np.where(has_long & has_short, params.short_weight, np.where(has_short, 1.0, 0.0)).astype(np.float32)
    blended = _unit_rows(w[:, None] * short + (1.0 - w)[:, None] * long)
    return blended, blended.any(axis=1)


def _unit_rows(m: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; rows of (near) zero norm become zero rows."""
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return np.where(norms > 1e-6, m / np.where(norms > 1e-6, norms, 1.0), 0.0).astype(np.float32)
