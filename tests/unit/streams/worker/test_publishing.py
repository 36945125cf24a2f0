"""The published list record: what subscribers receive as `items`, the stored candidates as `more`."""

from __future__ import annotations

import json

import jsonschema

from models.ranking import Scored
from schemas.records import Recommendation, json_schema
from streams.worker.publishing import recommendation_value


def scored(n: int) -> list[Scored]:
    return [Scored(f"i{j}", 1.0 - j / 10, f"because {j}") for j in range(n)]


def test_the_shown_items_then_the_stored_candidates() -> None:
    doc = json.loads(recommendation_value("u", scored(5), "e", "m", "popular", shown=3))
    jsonschema.validate(doc, json_schema("recommendation"))
    assert [i["item_id"] for i in doc["items"]] == ["i0", "i1", "i2"]
    assert [i["item_id"] for i in doc["more"]] == ["i3", "i4"] and doc["variant"] == "popular"
    assert Recommendation.model_validate(doc).more[0].reason == "because 3"


def test_without_stored_candidates_the_record_is_as_before() -> None:
    doc = json.loads(recommendation_value("u", scored(3), "e", "m", "default"))
    jsonschema.validate(doc, json_schema("recommendation"))
    assert len(doc["items"]) == 3 and "more" not in doc
    old = {k: v for k, v in doc.items() if k != "variant"}  # a list published before variants existed
    assert Recommendation.model_validate(old).variant == "default"
