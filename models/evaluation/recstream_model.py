"""recstream itself in the prequential harness: the very `Recommender.step` the Faust agent calls.

The list judged before an event is the list the user had: the one computed right after their
previous event (as the agent would have published it). The co-visitation each step describes is
applied at once, as every worker would apply it from the co-visitation topic.

Two configurations are judged. The protocol's (`published=False`) ranks with the harness's
exclusions (everything the user has interacted with), like every baseline. The worker's
(`published=True`) is what subscribers receive: the worker's own list length and only its own
exclusions (purchases and dislikes), with the judged top k taken as published.
"""

from __future__ import annotations

from collections.abc import Collection

from models.covisitation import CoVisitation
from models.encoder import Encoder
from models.index import ItemIndex
from models.interest import UserState
from models.params import CoreParams
from models.pipeline import Positioned, Recommender
from models.ranking import recommend_many
from schemas.records import Event


class RecstreamModel:
    def __init__(self, index: ItemIndex, encoder: Encoder, params: CoreParams, published: bool = False) -> None:
        self.recommender = Recommender(index, encoder, params, CoVisitation(params))
        self.published = published
        self.name = f"recstream (as published: top {params.top_k})" if published else "recstream"
        self.key = "recstream_published" if published else "recstream"
        self.states: dict[str, UserState] = {}
        self.lists: dict[str, list[str]] = {}

    def recommend(self, user_id: str, k: int, exclude: set[str]) -> list[str]:
        current = self.lists.get(user_id)
        if current is None:
            # A user we have never seen: what a new visitor would be shown.
            rec = self.recommender
            empty = UserState.empty(rec.index.dim)
            current = [s.item_id for s in recommend_many([empty], rec.index, rec.params, rec.covis,
                                                         [self._exclusions(exclude)])[0]]
        if self.published:
            return current[:k]
        return [item for item in current if item not in exclude][:k]

    def learn(self, event: Event, seen: set[str]) -> None:
        result = self.recommender.step(self.states, [Positioned(event)],
                                       exclude={event.user_id: self._exclusions(seen)})
        self.states.update(result.states)
        self.lists.update({u: [s.item_id for s in scored] for u, scored in result.recommendations.items()})
        for visit in result.visits:
            self.recommender.covis.apply(visit)

    def _exclusions(self, seen: set[str]) -> Collection[str]:
        """The harness's exclusions, or none beyond the state's own in the worker's configuration."""
        return () if self.published else seen
