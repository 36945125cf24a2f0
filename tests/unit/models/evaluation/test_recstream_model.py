"""recstream in the harness (models.evaluation.recstream_model): the protocol's and the worker's configurations."""

from __future__ import annotations

from models.evaluation.recstream_model import RecstreamModel
from models.index import ItemIndex
from models.params import CoreParams
from schemas.records import Event, EventType
from tests.unit.models.test_recommender_step import DIM, VECS, HashEncoder


def _model(top_k: int, published: bool) -> RecstreamModel:
    index = ItemIndex(DIM, capacity=4)
    for n, v in enumerate(VECS):
        index.upsert(f"i{n}", f"Title {n}", [], f"h{n}", v)
    return RecstreamModel(index, HashEncoder(), CoreParams(top_k=top_k), published=published)


def _replay(model: RecstreamModel) -> set[str]:
    seen: set[str] = set()
    for n, (kind, item) in enumerate([(EventType.CLICK, "i0"), (EventType.BROWSE, "i1"), (EventType.PURCHASE, "i2")]):
        seen.add(item)
        model.learn(Event(event_id=f"e{n}", user_id="u", type=kind, item_id=item, ts=1_000 * (n + 1)), seen)
    return seen


def test_the_protocols_configuration_excludes_everything_the_user_touched() -> None:
    model = _model(top_k=5, published=False)
    seen = _replay(model)
    top = model.recommend("u", 5, seen)
    assert len(top) == 5 and not set(top) & seen
    assert model.key == "recstream"


def test_the_published_configuration_is_the_workers_list_as_is() -> None:
    """Only purchases and dislikes are excluded, the list is the worker's length, the harness's set is ignored."""
    model = _model(top_k=12, published=True)
    seen = _replay(model)
    assert len(model.lists["u"]) == 11, "12 items but the purchased one"
    assert "i2" not in model.lists["u"] and {"i0", "i1"} <= set(model.lists["u"])
    assert model.recommend("u", 10, seen) == model.lists["u"][:10]
    assert model.key == "recstream_published" and "top 12" in model.name
