"""Tunable constants of the core, in one frozen object.

The service builds it from settings; `recstream evaluate` builds the same object, so both run the
very same rule with the very same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.records import EventType

DAY_S = 86_400.0


@dataclass(frozen=True)
class CoreParams:
    top_k: int = 20
    # How much each event type moves the interest vectors; dislike pushes away.
    w_purchase: float = 1.0
    w_click: float = 0.5
    w_browse: float = 0.2
    w_dislike: float = -0.7
    w_search: float = 0.8
    # Long-term taste fades over weeks, a session over minutes (event-time half-lives).
    long_half_life_s: float = 30 * DAY_S
    short_half_life_s: float = 30 * 60.0
    # Share of the short-term (session) direction in the query vector.
    short_weight: float = 0.5
    # Bounded history kept per user, for reasons and co-visitation.
    recent_items: int = 20
    # Window of the recent-popularity fallback, in events.
    popular_window: int = 2_000

    def weight(self, event_type: EventType) -> float:
        return {
            EventType.PURCHASE: self.w_purchase,
            EventType.CLICK: self.w_click,
            EventType.BROWSE: self.w_browse,
            EventType.DISLIKE: self.w_dislike,
            EventType.SEARCH: self.w_search,
        }[event_type]
