"""recstream itself in the prequential harness: the very `Recommender.step` the Faust agent calls.

The list judged before an event is the list the user had: the one computed right after their
previous event (as the agent would have published it). The co-visitation each step describes is
applied at once, as every worker would apply it from the co-visitation topic.
"""

from __future__ import annotations

from models.covisitation import CoVisitation
from models.encoder import Encoder
from models.index import ItemIndex
from models.interest import UserState
from models.params import CoreParams
from models.pipeline import Positioned, Recommender
from models.ranking import recommend_many
from schemas.records import Event


class RecstreamModel:
    name = "recstream"

    def __init__(self, index: ItemIndex, encoder: Encoder, params: CoreParams) -> None:
        self.recommender = Recommender(index, encoder, params, CoVisitation(params))
        self.states: dict[str, UserState] = {}
        self.lists: dict[str, list[str]] = {}

    def recommend(self, user_id: str, k: int, exclude: set[str]) -> list[str]:
        current = self.lists.get(user_id)
        if current is None:
            # A user we have never seen: what a new visitor would be shown.
            rec = self.recommender
            empty = UserState.empty(rec.index.dim)
            current = [s.item_id for s in recommend_many([empty], rec.index, rec.params, rec.covis, [exclude])[0]]
        return [item for item in current if item not in exclude][:k]

    def learn(self, event: Event, seen: set[str]) -> None:
        result = self.recommender.step(self.states, [Positioned(event)], exclude={event.user_id: seen})
        self.states.update(result.states)
        self.lists.update({u: [s.item_id for s in scored] for u, scored in result.recommendations.items()})
        for visit in result.visits:
            self.recommender.covis.apply(visit)
