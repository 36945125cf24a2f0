"""The one streaming step: a batch of decoded events in, updated user states and fresh lists out.

The Faust events agent and the in-process evaluation both call `Recommender.step`; the agent only
adds decoding, table reads/writes and publishing around it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from models.encoder import Encoder
from models.index import ItemIndex
from models.interest import UserState, apply_event, seen_origin
from models.params import CoreParams
from models.covisitation import CoVisit, CoVisitation, visit_for
from models.ranking import Scored, recommend_many
from models.variants import Experiment
from schemas.records import Event, EventType


@dataclass(frozen=True)
class Positioned:
    """An event with its position in the source log, so a redelivery can be recognised."""

    event: Event
    offset: int = -1
    # (partition, offset) where a re-keyed event first arrived; None when it arrived keyed by its user.
    origin: tuple[int, int] | None = None


@dataclass
class StepResult:
    states: dict[str, UserState] = field(default_factory=dict)
    recommendations: dict[str, list[Scored]] = field(default_factory=dict)
    # The newest applied event per user: what triggered the published list.
    triggers: dict[str, Event] = field(default_factory=dict)
    applied: list[Event] = field(default_factory=list)
    duplicates: list[Event] = field(default_factory=list)
    # What the applied events add to the shared co-visitation; the caller applies or publishes them.
    visits: list[CoVisit] = field(default_factory=list)
    # The event each visit came from (same order), so the caller can tag visits with their source.
    visit_events: list[Event] = field(default_factory=list)
    unknown_items: int = 0
    # Users whose newest event in the batch was an erase: delete their state and list, publish nothing.
    erased: set[str] = field(default_factory=set)
    # The experiment variant of every user whose list was recomputed.
    variants: dict[str, str] = field(default_factory=dict)
    # The online hit measure, one entry per judged event: (variant, rank of the event's item in the
    # list the user was shown before it, 1-based; 0 when it was not in that list).
    online: list[tuple[str, int]] = field(default_factory=list)
    # The encoder whose index ranked each recomputed list (a variant may name its own).
    encoders: dict[str, str] = field(default_factory=dict)


# Event types judged by the online hit measure: the user chose the item. A dislike is not a success.
JUDGED = frozenset({EventType.PURCHASE, EventType.CLICK, EventType.BROWSE})


def shown_rank(state: UserState, item_id: str) -> int:
    """1-based rank of `item_id` in the list the user was last shown; 0 when it was not in it."""
    try:
        return state.shown.index(item_id) + 1
    except ValueError:
        return 0


class Recommender:
    def __init__(
        self,
        index: ItemIndex,
        encoder: Encoder,
        params: CoreParams,
        covis: CoVisitation | None = None,
        experiment: Experiment | None = None,
    ) -> None:
        """`params` holds for everything users share (co-visitation); `experiment` gives each user the
        params of their variant (by default everyone is in `default`, with `params`)."""
        self.index = index
        self.encoder = encoder
        self.params = params
        self.covis = covis if covis is not None else CoVisitation(params)
        self.experiment = experiment if experiment is not None else Experiment.single(params)
        # Variants ranked with an encoder of their own, and its index of the same items.
        self._variant_content: dict[str, tuple[ItemIndex, Encoder]] = {}

    def use_content(self, index: ItemIndex, encoder: Encoder) -> None:
        """Switch to another encoder and its index of the same items (a new encoder version rolled out).

        Users' interest vectors stay as they are: a fine-tuned encoder starts from the one before it,
        so its space is close, and each new event moves a user's vectors into the new space."""
        self._check_dim(index, encoder)
        self.index, self.encoder = index, encoder

    def use_variant_content(self, variant: str, index: ItemIndex, encoder: Encoder) -> None:
        """Rank the users of `variant` with their own encoder and its index of the same items (an
        experiment between encoders); until this is called they are ranked like everyone else.
        Their interest vectors carry over for the same reason as in `use_content`."""
        self._check_dim(index, encoder)
        self._variant_content[variant] = (index, encoder)

    def content_of(self, variant: str) -> tuple[ItemIndex, Encoder]:
        """The index and encoder that rank `variant`'s users."""
        return self._variant_content.get(variant, (self.index, self.encoder))

    def _check_dim(self, index: ItemIndex, encoder: Encoder) -> None:
        if index.dim != self.index.dim or encoder.dim != index.dim:
            raise ValueError(f"the new encoder makes {encoder.dim}-dimensional vectors, the users' are "
                             f"{self.index.dim}-dimensional: an encoder of another base model needs fresh state")

    def step(
        self,
        states: Mapping[str, UserState | None],
        batch: Sequence[Positioned],
        exclude: Mapping[str, Collection[str]] | None = None,
    ) -> StepResult:
        """Apply `batch` in order to the given states, then recompute each touched user's list once.

        The co-visitation store is only read here: `StepResult.visits` says what to add to it, so
        a worker can share them with every other worker before anyone applies them.
        """
        out = StepResult()
        variant_of = {u: self.experiment.variant_of(u) for u in {p.event.user_id for p in batch}}
        content_of = {u: self.content_of(v.name) for u, v in variant_of.items()}
        query_vecs = self._encode_queries(batch, content_of)
        item_vecs = self._item_vectors(batch, content_of)
        # None marks a user erased in this batch: later events start them afresh, not from `states`.
        current: dict[str, UserState | None] = {}
        for pos in batch:
            ev = pos.event
            variant = variant_of[ev.user_id]
            if ev.type is EventType.ERASE:
                current[ev.user_id] = None
                out.triggers.pop(ev.user_id, None)
                out.applied.append(ev)
                continue
            known = current[ev.user_id] if ev.user_id in current else states.get(ev.user_id)
            state = known or UserState.empty(self.index.dim)
            if is_redelivery(state, pos):
                out.duplicates.append(ev)
                continue
            item_vec = None
            if ev.type is not EventType.SEARCH:
                assert ev.item_id is not None
                item_vec = item_vecs.get((ev.user_id, ev.item_id))
                if item_vec is None:
                    out.unknown_items += 1
            if ev.type in JUDGED and state.shown:
                out.online.append((variant.name, shown_rank(state, ev.item_id)))  # type: ignore[arg-type]
            visit = self._in_catalog(visit_for(state, ev, self.params))
            if visit is not None:
                out.visits.append(visit)
                out.visit_events.append(ev)
            current[ev.user_id] = apply_event(
                state, ev, variant.params, item_vec=item_vec, query_vec=query_vecs.get(ev.event_id), offset=pos.offset,
                origin=pos.origin,
            )
            out.triggers[ev.user_id] = ev
            out.applied.append(ev)
        out.states = {u: s for u, s in current.items() if s is not None}
        out.erased = {u for u, s in current.items() if s is None}
        by_variant: dict[str, list[str]] = {}
        for user in out.triggers:
            by_variant.setdefault(variant_of[user].name, []).append(user)
        for name, users in by_variant.items():
            extra = [exclude.get(u, ()) for u in users] if exclude else None
            params = self.experiment.params_of(name)
            index, encoder = self.content_of(name)
            lists = recommend_many([out.states[u] for u in users], index, params, self.covis, extra)
            for user, scored in zip(users, lists):
                out.recommendations[user] = scored
                out.variants[user] = name
                out.encoders[user] = encoder.name
                out.states[user] = replace(out.states[user], shown=tuple(s.item_id for s in scored[: params.top_k]))
        return out

    def _in_catalog(self, visit: CoVisit | None) -> CoVisit | None:
        """The part of a co-visit that is about catalog items; None if its item is not one.

        Every worker keeps every item a co-visit names, for good: an id the catalog does not have
        (a typo, an app's test id, an item deleted or not published yet) would cost memory forever
        on every worker and, if it drew traffic, could crowd real items out of the popular
        candidates. Such events still count for their user; they just teach co-visitation nothing.
        """
        if visit is None or visit.item_id not in self.index:
            return None
        before = tuple(pair for pair in visit.before if pair[0] in self.index)
        return visit if len(before) == len(visit.before) else CoVisit(visit.item_id, visit.ts, before)

    def _item_vectors(self, batch: Sequence[Positioned], content_of: Mapping[str, tuple[ItemIndex, Encoder]]
                      ) -> dict[tuple[str, str], np.ndarray]:
        """(user, item) -> the item's vector in the index that ranks the user; one fetch per index."""
        out: dict[tuple[str, str], np.ndarray] = {}
        for (index, _encoder), events in _by_content(batch, content_of).items():
            ids = list({e.item_id for e in events if e.item_id is not None and e.item_id in index})
            vectors = dict(zip(ids, index.vectors(ids)))
            out.update({(e.user_id, e.item_id): vectors[e.item_id] for e in events if e.item_id in vectors})
        return out

    def _encode_queries(self, batch: Sequence[Positioned], content_of: Mapping[str, tuple[ItemIndex, Encoder]]
                        ) -> dict[str, np.ndarray]:
        """event id -> the search's query vector, by the encoder that ranks its user; one call per encoder."""
        out: dict[str, np.ndarray] = {}
        for (_index, encoder), events in _by_content(batch, content_of).items():
            searches = [e for e in events if e.type is EventType.SEARCH and e.query]
            if searches:
                vectors = encoder.encode([e.query for e in searches])  # type: ignore[misc]
                out.update({e.event_id: v for e, v in zip(searches, vectors)})
        return out


def _by_content(batch: Sequence[Positioned], content_of: Mapping[str, tuple[ItemIndex, Encoder]]
                ) -> dict[tuple[ItemIndex, Encoder], list[Event]]:
    """The batch's events grouped by the (index, encoder) that ranks their user, in batch order."""
    groups: dict[tuple[ItemIndex, Encoder], list[Event]] = {}
    for pos in batch:
        groups.setdefault(content_of[pos.event.user_id], []).append(pos.event)
    return groups


def is_redelivery(state: UserState, pos: Positioned) -> bool:
    """A user's events all live in one partition, so an offset at or below the last applied one was seen.

    A re-keyed event is also seen when its source position is (`UserState.rekeyed`): a crash between
    its re-send and the source's commit re-sends it, and the copy gets a new offset here.
    """
    if pos.offset >= 0 and pos.offset <= state.last_offset:
        return True
    if seen_origin(state, pos.origin):
        return True
    return state.events_applied > 0 and pos.event.event_id == state.last_event_id
