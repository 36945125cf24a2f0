"""recstream itself in the prequential harness: the very `Recommender.step` the Faust agent calls.

The list judged before an event is the list the user had: the one computed right after their
previous event (as the agent would have published it). The co-visitation each step describes is
applied at once, as every worker would apply it from the co-visitation topic.

Two configurations are judged. The protocol's (`published=False`) ranks with the harness's
exclusions (everything the user has interacted with), like every baseline. The worker's
(`published=True`) is what subscribers receive: the worker's own list length and only its own
exclusions (purchases and dislikes), with the judged top k taken as published.

With an experiment, each user is ranked with their variant's params, as the workers do, and the
workers' online measure (models/pipeline.py, `StepResult.online`) is counted per variant: the
offline figure a live `recstream experiments report` should agree with.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection

from models.covisitation import CoVisitation
from models.encoder import Encoder
from models.index import ItemIndex
from models.interest import UserState
from models.params import CoreParams
from models.pipeline import Positioned, Recommender
from models.ranking import recommend_many
from models.variants import Experiment
from schemas.records import Event

# Cut-offs of the online measure, as the workers count it (streams/worker/metrics.py).
ONLINE_KS = (1, 5, 10, 20)


class RecstreamModel:
    def __init__(self, index: ItemIndex, encoder: Encoder, params: CoreParams, published: bool = False,
                 experiment: Experiment | None = None) -> None:
        self.recommender = Recommender(index, encoder, params, CoVisitation(params), experiment)
        self.published = published
        self.name = f"recstream (as published: top {params.top_k})" if published else "recstream"
        self.key = "recstream_published" if published else "recstream"
        self.states: dict[str, UserState] = {}
        self.lists: dict[str, list[str]] = {}
        self.online_events: Counter[str] = Counter()
        self.online_hits: Counter[tuple[str, int]] = Counter()

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
        for variant, rank in result.online:
            self.online_events[variant] += 1
            for k in ONLINE_KS:
                self.online_hits[variant, k] += 0 < rank <= k
        for visit in result.visits:
            self.recommender.covis.apply(visit)

    def _exclusions(self, seen: set[str]) -> Collection[str]:
        """The harness's exclusions, or none beyond the state's own in the worker's configuration."""
        return () if self.published else seen

    def extra_metrics(self) -> dict[str, float]:
        """The online measure per variant: `online_events:VARIANT` and `online_hit@K:VARIANT`."""
        out: dict[str, float] = {}
        for variant, n in sorted(self.online_events.items()):
            out[f"online_events:{variant}"] = float(n)
            for k in ONLINE_KS:
                out[f"online_hit@{k}:{variant}"] = self.online_hits[variant, k] / n
        return out
