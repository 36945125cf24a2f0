"""Per-user interest state and the rule that updates it, one event at a time.

`apply_event` is a pure `(state, event) -> state` step: the Faust agent, the tests and the
offline evaluation call it, so there is exactly one implementation of how a user's taste moves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

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
    # Items never to recommend again: purchased or disliked.
    excluded: frozenset[str] = field(default_factory=frozenset)
    last_query: str | None = None
    query_vec: np.ndarray | None = None
    # The newest event was a search: the list should follow the query, not the history.
    searching: bool = False

    @classmethod
    def empty(cls, dim: int) -> UserState:
        zeros = np.zeros(dim, dtype=np.float32)
        return cls(long=zeros, short=zeros.copy())


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
) -> UserState:
    """Fold one event into the state.

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
            excluded = excluded | {event.item_id}

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
    )


def _unit(v: np.ndarray) -> np.ndarray | None:
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 1e-6 else None


def query_vector(state: UserState, params: CoreParams) -> np.ndarray | None:
    """The direction to search the index in: a blend of session and long-term taste.

    None when the user has no usable signal yet (only unknown items, or dislikes cancelled out).
    """
    long_u, short_u = _unit(state.long), _unit(state.short)
    if long_u is None and short_u is None:
        return None
    if long_u is None:
        return short_u
    if short_u is None:
        return long_u
    blended = params.short_weight * short_u + (1.0 - params.short_weight) * long_u
    return _unit(blended)
