"""Request filters on a stored list: exclusions and categories fall back on the stored candidates."""

from __future__ import annotations

import pytest

from streams.worker.request_filters import BadRequest, ListRequest, filtered, parse_request

CATEGORIES = {"a": ["Sci-Fi"], "b": ["Horror"], "c": ["Sci-Fi", "Horror"], "d": ["Drama"], "e": ["sci-fi"],
              "f": ["Comedy"]}


def doc(shown: str = "abc", more: str = "def") -> dict:
    item = lambda i: {"item_id": i, "score": 1.0, "reason": f"because {i}"}  # noqa: E731
    return {"user_id": "u", "items": [item(i) for i in shown], "more": [item(i) for i in more],
            "trigger_event_id": "e", "generated_at": 1, "model_version": "m", "variant": "default"}


def ids(answer: dict) -> str:
    return "".join(i["item_id"] for i in answer["items"])


def run(query: dict[str, str], stored: dict | None = None) -> dict:
    request = parse_request(query, max_k=6)
    assert request is not None
    return filtered(stored or doc(), request, lambda wanted: {i: CATEGORIES[i] for i in wanted})


def test_no_parameters_serve_the_list_as_it_is() -> None:
    assert parse_request({}, max_k=6) is None


def test_excluded_items_give_way_to_stored_candidates() -> None:
    answer = run({"exclude": "b"})
    assert ids(answer) == "acd" and answer["truncated"] is False and "more" not in answer


def test_categories_and_k() -> None:
    assert ids(run({"category": "sci-fi"})) == "ace"  # case does not matter
    assert ids(run({"exclude_category": "Horror", "k": "4"})) == "adef"
    assert ids(run({"category": "Sci-Fi,Drama", "exclude_category": "horror"})) == "ade"


def test_too_few_left_is_said() -> None:
    answer = run({"category": "Comedy", "k": "3"})
    assert ids(answer) == "f" and answer["truncated"] is True


def test_a_list_without_stored_candidates_still_filters() -> None:
    answer = run({"exclude": "a"}, doc(more=""))
    assert ids(answer) == "bc" and answer["truncated"] is True


@pytest.mark.parametrize(("query", "message"), [
    ({"k": "0"}, "k must be a whole number from 1 to 6"),
    ({"k": "7"}, "from 1 to 6"),
    ({"k": "two"}, "from 1 to 6"),
    ({"exclude": " , "}, "exclude is empty"),
    ({"categories": "x"}, "unknown parameter(s) categories"),
])
def test_bad_parameters_are_400s_with_a_reason(query: dict[str, str], message: str) -> None:
    with pytest.raises(BadRequest, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_request(query, max_k=6)


def test_requests_without_category_filters_do_not_look_categories_up() -> None:
    def never(_: object) -> dict:
        raise AssertionError("looked up")

    assert ids(filtered(doc(), ListRequest(k=2, exclude=frozenset({"a"})), never)) == "bc"
