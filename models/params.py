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
    # Candidates kept beyond top_k (each with its reason) for request filters to fall back on; the list a
    # user is shown, and subscribers receive as `items`, is still the top_k. 0: none kept.
    stored_k: int = 0
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
    recent_items: int = 50
    # Purchased or disliked items never recommended again: the newest this many (the oldest drop out).
    excluded_items: int = 100
    # Also never recommend the user's `recent_items` newest items of any kind (clicked, browsed...): for
    # catalogs consumed once (films, articles); a shop that re-shows viewed items leaves it off.
    exclude_recent: bool = False
    # Co-visitation: an item visited after another within this many of the user's items forms a
    # pair, weighted 1/distance; the reverse direction (B then A suggests A) counts this much.
    covis_window: int = 50
    covis_backward: float = 0.5
    # Pair counts and item counts fade with event time; taste in a catalog drifts over months.
    covis_half_life_s: float = 365 * DAY_S
    # The newest anchors weigh most: the i-th newest history item counts anchor_decay**i.
    covis_anchors: int = 20
    anchor_decay: float = 0.8
    # Popularity damping: divide by count**norm of the anchor and of the candidate.
    anchor_norm: float = 0.5
    candidate_norm: float = 0.2
    # Neighbours kept per item (the strongest by decayed weight); bounds memory and scoring time.
    covis_row_limit: int = 200
    # Popularity fades faster than co-visitation: it is "what is watched now".
    popularity_half_life_s: float = 60 * DAY_S
    popular_candidates: int = 100
    # Blend of the normalised signals (co-visitation's weight 1 sets the scale; the others are relative
    # to it). Users with no co-visitation evidence, or searching, get content at w_content_led instead.
    w_covis: float = 1.0
    w_popularity: float = 0.3
    w_content: float = 0.1
    w_content_led: float = 1.0
    # Items nobody has interacted with yet can only be found by their text: their content
    # similarity gets this extra weight, so new items reach lists before anyone clicks them.
    w_fresh: float = 0.3
    content_candidates: int = 50
    # Diversity: 0 ranks by score alone; above it, the list is re-ranked by maximal marginal relevance,
    # trading (1 - diversity_lambda) x score against diversity_lambda x the similarity to items already
    # chosen (EVALUATION.md has hit@10 against intra-list diversity for a sweep).
    diversity_lambda: float = 0.0

    @property
    def list_length(self) -> int:
        """How many items ranking keeps per user: the top_k shown, and the stored candidates behind them."""
        return max(self.top_k, self.stored_k)

    def weight(self, event_type: EventType) -> float:
        return {
            EventType.PURCHASE: self.w_purchase,
            EventType.CLICK: self.w_click,
            EventType.BROWSE: self.w_browse,
            EventType.DISLIKE: self.w_dislike,
            EventType.SEARCH: self.w_search,
        }[event_type]
