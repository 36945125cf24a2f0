"""The pydantic records and the shipped JSON Schema files accept and reject the same documents."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from schemas.records import Event, EventType, Item, Recommendation, RecommendedItem, json_schema

EVENT_V = jsonschema.Draft202012Validator(json_schema("event"))
ITEM_V = jsonschema.Draft202012Validator(json_schema("item"))
REC_V = jsonschema.Draft202012Validator(json_schema("recommendation"))
TYPES = [t.value for t in EventType]
NEEDS_ITEM = [t for t in TYPES if t not in ("search", "erase")]


def pydantic_accepts(model: type[BaseModel], doc: Any) -> bool:
    try:
        model.model_validate_json(json.dumps(doc))
    except ValidationError:
        return False
    return True


def _agree(validator: jsonschema.protocols.Validator, model: type[BaseModel], doc: Any) -> bool:
    by_schema = validator.is_valid(doc)
    by_model = pydantic_accepts(model, doc)
    assert by_schema == by_model, f"schema says {by_schema}, pydantic says {by_model} for {json.dumps(doc)[:400]}"
    return by_schema


@pytest.mark.parametrize("name", ["event", "item", "recommendation"])
def test_shipped_schemas_are_valid_draft_2020_12(name: str) -> None:
    schema = json_schema(name)  # type: ignore[arg-type]
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["additionalProperties"] is False


def test_event_type_enum_matches() -> None:
    assert json_schema("event")["properties"]["type"]["enum"] == TYPES


# -- strategies -------------------------------------------------------------------------------

# Strings: usually short; sometimes right at a length limit, with non-BMP characters counting as one.
def _ids(max_len: int = 256) -> st.SearchStrategy[str]:
    return st.text(min_size=1, max_size=12) | st.text(min_size=max_len - 2, max_size=max_len)


_ts = (
    st.integers(min_value=0, max_value=2**53)
    | st.just(0)
    | st.integers(min_value=2**53, max_value=2**70)
    | st.integers(min_value=0, max_value=2**53).map(float)  # JSON Schema integers include 1.0
)
_absent = object()


def _drop_absent(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not _absent}


@st.composite
def valid_events(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(TYPES))
    doc: dict[str, Any] = {
        "event_id": draw(_ids()),
        "user_id": draw(_ids()),
        "type": kind,
        "ts": draw(_ts),
    }
    if kind == "search":
        doc["query"] = draw(st.text(min_size=1, max_size=30) | st.text(min_size=1000, max_size=1100))
        doc["item_id"] = draw(st.sampled_from([_absent, None]) | _ids())
    elif kind == "erase":
        doc["item_id"] = draw(st.sampled_from([_absent, None]) | _ids())
        doc["query"] = draw(st.sampled_from([_absent, None]) | st.text(max_size=10))
    else:
        doc["item_id"] = draw(_ids())
        doc["query"] = draw(st.sampled_from([_absent, None]) | st.text(max_size=10))
    return _drop_absent(doc)


_json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=5)
_json_values = st.recursive(_json_scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3), c, max_size=3), max_leaves=6)
# Floats that are not whole numbers: both sides must reject them as an integer ts.
_fractional = st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer())


def _wrong_type_for(field: str) -> st.SearchStrategy[Any]:
    if field == "ts":
        return st.text(max_size=5) | st.booleans() | st.none() | _fractional | st.lists(st.integers(), max_size=2)
    if field in ("item_id", "query"):  # nullable strings
        return st.integers() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False) | st.lists(st.text(max_size=2), max_size=2) | st.dictionaries(st.text(max_size=2), st.integers(), max_size=2)
    return st.none() | st.integers() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False) | st.lists(st.text(max_size=2), max_size=2)


@st.composite
def mutated_events(draw: st.DrawFn) -> Any:
    doc = draw(valid_events())
    mutation = draw(
        st.sampled_from(
            [
                "missing", "wrong_type", "extra", "bad_enum", "search_without_query", "click_without_item",
                "negative_ts", "float_ts", "bool_ts", "empty_string", "too_long", "not_object", "twice",
            ]
        )
    )
    if mutation == "missing":
        doc.pop(draw(st.sampled_from(sorted(doc))))
    elif mutation == "wrong_type":
        field = draw(st.sampled_from(["event_id", "user_id", "type", "item_id", "query", "ts"]))
        doc[field] = draw(_wrong_type_for(field))
    elif mutation == "extra":
        doc[draw(st.text(min_size=1, max_size=8).filter(lambda k: k not in doc))] = draw(_json_values)
    elif mutation == "bad_enum":
        doc["type"] = draw(st.sampled_from(["Click", "CLICK", "view", "", " click", "purchase "]) | st.text(max_size=8).filter(lambda t: t not in TYPES))
    elif mutation == "search_without_query":
        doc["type"] = "search"
        choice = draw(st.sampled_from(["drop", "null", "empty"]))
        if choice == "drop":
            doc.pop("query", None)
        else:
            doc["query"] = None if choice == "null" else ""
    elif mutation == "click_without_item":
        doc["type"] = draw(st.sampled_from(NEEDS_ITEM))
        if draw(st.booleans()):
            doc.pop("item_id", None)
        else:
            doc["item_id"] = None
    elif mutation == "negative_ts":
        doc["ts"] = draw(st.integers(max_value=-1))
    elif mutation == "float_ts":
        doc["ts"] = draw(_fractional)
    elif mutation == "bool_ts":
        doc["ts"] = draw(st.booleans())
    elif mutation == "empty_string":
        doc[draw(st.sampled_from(["event_id", "user_id", "item_id", "query"]))] = ""
    elif mutation == "too_long":
        doc[draw(st.sampled_from(["event_id", "user_id", "item_id"]))] = draw(st.text(min_size=257, max_size=260))
    elif mutation == "not_object":
        return draw(st.lists(_json_scalars, max_size=3) | _json_scalars)
    else:  # two mutations at once
        doc.pop(draw(st.sampled_from(sorted(doc))))
        doc["ts"] = draw(_wrong_type_for("ts") | st.integers(max_value=-1))
    return doc


# -- events -----------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=valid_events())
def test_valid_events_are_accepted_by_both(doc: dict[str, Any]) -> None:
    assert _agree(EVENT_V, Event, doc) is True


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=mutated_events())
def test_event_schema_and_model_agree_on_mutated_documents(doc: Any) -> None:
    _agree(EVENT_V, Event, doc)


@pytest.mark.parametrize(
    "doc, valid",
    [
        ({"event_id": "e", "user_id": "u", "type": "click", "item_id": "i", "ts": 0}, True),
        ({"event_id": "e", "user_id": "u", "type": "search", "query": "q", "ts": 1}, True),
        ({"event_id": "e", "user_id": "u", "type": "search", "query": "q", "item_id": None, "ts": 1}, True),
        ({"event_id": "e", "user_id": "u", "type": "click", "item_id": "i", "query": "", "ts": 1}, True),
        ({"event_id": "e", "user_id": "u", "type": "search", "query": "q" * 5000, "ts": 1}, True),  # no schema limit
        ({"event_id": "🎬" * 256, "user_id": "u", "type": "click", "item_id": "i", "ts": 1}, True),
        ({"event_id": "🎬" * 257, "user_id": "u", "type": "click", "item_id": "i", "ts": 1}, False),
        ({"event_id": "e", "user_id": "u", "type": "search", "ts": 1}, False),
        ({"event_id": "e", "user_id": "u", "type": "search", "query": "", "ts": 1}, False),
        ({"event_id": "e", "user_id": "u", "type": "search", "query": None, "ts": 1}, False),
        ({"event_id": "e", "user_id": "u", "type": "search", "query": "q", "item_id": "", "ts": 1}, False),
        ({"event_id": "e", "user_id": "u", "type": "click", "ts": 1}, False),
        ({"event_id": "e", "user_id": "u", "type": "erase", "ts": 1}, True),
        ({"event_id": "e", "user_id": "u", "type": "erase", "item_id": None, "query": None, "ts": 1}, True),
        ({"event_id": "e", "user_id": "u", "type": "erase", "item_id": "", "ts": 1}, False),
        ({"event_id": "e", "user_id": "u", "type": "dislike", "item_id": None, "ts": 1}, False),
        ({"event_id": "e", "user_id": "u", "type": "click", "item_id": "i", "ts": -1}, False),
        ({"event_id": "e", "user_id": "u", "type": "click", "item_id": "i", "ts": 1.5}, False),
        ({"event_id": "e", "user_id": "u", "type": "click", "item_id": "i", "ts": True}, False),
        ({"event_id": "e", "user_id": "u", "type": "click", "item_id": "i", "ts": "1"}, False),
        ({"event_id": "e", "user_id": "u", "type": "Click", "item_id": "i", "ts": 1}, False),
        ({"event_id": "e", "user_id": "u", "type": "click", "item_id": "i", "ts": 1, "extra": 1}, False),
        ({"event_id": "", "user_id": "u", "type": "click", "item_id": "i", "ts": 1}, False),
        ({"event_id": 5, "user_id": "u", "type": "click", "item_id": "i", "ts": 1}, False),
        ([], False),
        ("event", False),
    ],
)
def test_event_examples(doc: Any, valid: bool) -> None:
    assert _agree(EVENT_V, Event, doc) is valid


def test_event_whole_number_float_ts_agrees() -> None:
    # JSON Schema integers include 1.0; the model accepts it too and stores an int.
    doc = {"event_id": "e", "user_id": "u", "type": "click", "item_id": "i", "ts": 1.0}
    assert _agree(EVENT_V, Event, doc) is True
    ts = Event.model_validate_json(json.dumps(doc)).ts
    assert ts == 1 and type(ts) is int
    assert _agree(EVENT_V, Event, {**doc, "ts": 1.5}) is False
    assert _agree(EVENT_V, Event, {**doc, "ts": -1.0}) is False


# -- items ------------------------------------------------------------------------------------


@st.composite
def valid_items(draw: st.DrawFn) -> dict[str, Any]:
    op = draw(st.sampled_from(["upsert", "delete", _absent]))  # absent op means upsert
    doc: dict[str, Any] = {
        "item_id": draw(_ids()),
        "op": op,
        "title": draw(st.text(max_size=20) | st.text(min_size=1020, max_size=1024))
        if op != "delete"
        else draw(st.sampled_from([_absent, None]) | st.text(max_size=5)),
        "description": draw(st.sampled_from([_absent, None]) | st.text(max_size=40) | st.text(min_size=8190, max_size=8192)),
        "categories": draw(
            st.just(_absent)
            | st.lists(st.text(max_size=12), max_size=4)
            | st.lists(st.text(max_size=3), min_size=62, max_size=64)
            | st.lists(st.text(min_size=250, max_size=256), min_size=1, max_size=2)
        ),
    }
    return _drop_absent(doc)


@st.composite
def mutated_items(draw: st.DrawFn) -> Any:
    doc = draw(valid_items())
    mutation = draw(
        st.sampled_from(
            ["missing", "wrong_type", "extra", "bad_op", "upsert_without_title", "empty_id", "too_long", "too_many", "not_object"]
        )
    )
    if mutation == "missing":
        doc.pop(draw(st.sampled_from(sorted(doc))))
    elif mutation == "wrong_type":
        field = draw(st.sampled_from(["item_id", "title", "description", "categories", "op"]))
        if field == "categories":
            doc[field] = draw(st.text(max_size=3) | st.integers() | st.lists(st.integers() | st.none() | st.booleans(), min_size=1, max_size=3) | st.dictionaries(st.text(max_size=2), st.text(max_size=2), max_size=2))
        elif field == "title":  # null is fine on a delete only
            doc[field] = draw(st.none() | st.integers() | st.booleans() | st.lists(st.text(max_size=2), max_size=2))
        else:
            doc[field] = draw(_wrong_type_for(field if field != "op" else "type"))
    elif mutation == "extra":
        doc[draw(st.text(min_size=1, max_size=8).filter(lambda k: k not in doc))] = draw(_json_values)
    elif mutation == "bad_op":
        doc["op"] = draw(st.sampled_from(["Upsert", "insert", "", "DELETE"]) | st.text(max_size=6).filter(lambda o: o not in ("upsert", "delete")))
    elif mutation == "upsert_without_title":
        doc["op"] = "upsert"
        doc.pop("title", None)
    elif mutation == "empty_id":
        doc["item_id"] = ""
    elif mutation == "too_long":
        field = draw(st.sampled_from(["item_id", "title", "description", "categories"]))
        limit = {"item_id": 256, "title": 1024, "description": 8192, "categories": 256}[field]
        too_long = "x" * (limit + draw(st.integers(min_value=1, max_value=3)))
        doc[field] = [too_long] if field == "categories" else too_long
    elif mutation == "too_many":
        doc["categories"] = ["c"] * draw(st.integers(min_value=65, max_value=70))
    else:
        return draw(st.lists(_json_scalars, max_size=3) | _json_scalars)
    return doc


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=valid_items())
def test_valid_items_are_accepted_by_both(doc: dict[str, Any]) -> None:
    assert _agree(ITEM_V, Item, doc) is True


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=mutated_items())
def test_item_schema_and_model_agree_on_mutated_documents(doc: Any) -> None:
    _agree(ITEM_V, Item, doc)


@pytest.mark.parametrize(
    "doc, valid",
    [
        ({"item_id": "m1", "op": "upsert", "title": "Alien (1979)", "categories": ["Horror"]}, True),
        ({"item_id": "m1", "op": "upsert", "title": ""}, True),
        ({"item_id": "m1", "op": "delete"}, True),
        ({"item_id": "m1", "op": "upsert"}, False),
        ({"item_id": "m1", "op": "upsert", "title": None}, False),
        ({"item_id": "m1", "op": "remove"}, False),
        ({"item_id": "m1", "op": "delete", "extra": True}, False),
        ({"item_id": "m1", "op": "upsert", "title": "t", "categories": [1]}, False),
        ({"item_id": "m1", "op": "upsert", "title": "t", "categories": ["c"] * 65}, False),
    ],
)
def test_item_examples(doc: Any, valid: bool) -> None:
    assert _agree(ITEM_V, Item, doc) is valid


def test_item_without_op_agrees() -> None:
    # A missing op means upsert, on both sides: so it needs a title.
    assert _agree(ITEM_V, Item, {"item_id": "m1", "title": "Alien (1979)"}) is True
    assert Item.model_validate_json('{"item_id": "m1", "title": "t"}').op == "upsert"
    assert _agree(ITEM_V, Item, {"item_id": "m1"}) is False


def test_delete_with_null_title_agrees() -> None:
    assert _agree(ITEM_V, Item, {"item_id": "m1", "op": "delete", "title": None}) is True
    assert _agree(ITEM_V, Item, {"item_id": "m1", "op": "upsert", "title": None}) is False
    assert _agree(ITEM_V, Item, {"item_id": "m1", "title": None}) is False


def test_long_category_agrees() -> None:
    doc = {"item_id": "m1", "op": "upsert", "title": "t", "categories": ["c" * 256]}
    assert _agree(ITEM_V, Item, doc) is True
    assert _agree(ITEM_V, Item, {**doc, "categories": ["c" * 257]}) is False


# -- what recstream writes --------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(
    user=st.text(max_size=10),
    items=st.lists(
        st.tuples(st.text(max_size=5), st.floats(min_value=-1, max_value=1, allow_nan=False), st.text(max_size=20)),
        max_size=5,
    ),
    generated_at=st.integers(min_value=0, max_value=2**45),
)
def test_published_recommendations_match_their_schema(user: str, items: list[tuple[str, float, str]], generated_at: int) -> None:
    rec = Recommendation(
        user_id=user,
        items=[RecommendedItem(item_id=i, score=s, reason=r) for i, s, r in items],
        trigger_event_id="e1",
        generated_at=generated_at,
        model_version="all-MiniLM-L6-v2",
    )
    doc = json.loads(rec.model_dump_json())
    assert REC_V.is_valid(doc), list(REC_V.iter_errors(doc))
    assert Recommendation.model_validate_json(rec.model_dump_json()) == rec
