"""The read API: any worker answers for any user, from its list cache, with the list subscribers saw."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import jsonschema
import pytest

from models.datasets.synthetic import generate_catalog
from schemas.records import Event, EventType
from streams.kafka.producing import Publisher, make_producer, publish_events
from streams.kafka.topics import partition_for
from streams.kafka.watching import RecommendationWatcher
from streams.lab.reliability.scaleout import wait_for_owners
from streams.lab.stack import LocalStack, WorkerProcess
from streams.worker.http_api import FORWARDED_BY, SERVED_BY

pytestmark = pytest.mark.integration


TOKEN = "read-api-test-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


def get(worker: WorkerProcess, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{worker.http_port}{path}",
                                     headers=BEARER if headers is None else headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read())


@pytest.fixture(scope="module")
def two_workers(stack: LocalStack) -> tuple[WorkerProcess, WorkerProcess, dict[int, str]]:
    # Both workers require the token: every read below, forwarded ones included, must carry it.
    stack.extra_env["RECSTREAM_HTTP_TOKEN"] = TOKEN
    _, first = stack.start_worker_with_catalog(generate_catalog(), "api-a")
    second = stack.add_worker("api-b")
    partitions = stack.settings().events_partitions
    owners = wait_for_owners([first, second], partitions, lambda o: len(set(o.values())) == 2 and second.is_ready(), 240)
    return first, second, owners


def test_any_worker_serves_every_users_latest_list(stack: LocalStack, two_workers) -> None:
    first, second, owners = two_workers
    settings = stack.settings()
    catalog = generate_catalog()
    users = [f"api-user-{n}" for n in range(24)]
    assert {partition_for(u, settings.events_partitions) for u in users} == set(owners), "users in every partition"
    now = int(time.time() * 1000)
    events = [Event(event_id=f"{u}-{i}", user_id=u, type=EventType.CLICK, item_id=catalog[(n * 7 + i) % len(catalog)].item_id,
                    ts=now + i) for n, u in enumerate(users) for i in range(3)]
    publisher = Publisher(make_producer(settings))
    with RecommendationWatcher(settings) as watcher:
        publish_events(publisher, settings.topic_events, events)
        publisher.flush()
        for u in users:
            assert watcher.wait_for_trigger(f"{u}-2", timeout=60) is not None, u
        latest = {u: watcher.latest[u] for u in users}

    schema = get(first, "/openapi.json")[2]["components"]["schemas"]["Recommendation"]
    for worker in (first, second):
        for u in users:
            status, headers, body = get(worker, f"/recommendations/{u}")
            assert status == 200, body
            assert body == latest[u].value, "the API serves the list subscribers last saw"
            jsonschema.validate(body, schema)
            assert all(item["reason"] for item in body["items"])
            owner = owners[partition_for(u, settings.events_partitions)]
            assert headers.get(SERVED_BY) == owner, f"{u}: served by {headers.get(SERVED_BY)}, owned by {owner}"


def test_unknown_users_and_health_answer_in_json(two_workers) -> None:
    first, second, _ = two_workers
    for worker in (first, second):
        status, _, body = get(worker, "/recommendations/nobody-ever")
        assert status == 404 and "no recommendations" in body["error"]
        assert get(worker, "/healthz")[:1] == (200,)
        status, _, body = get(worker, "/readyz")
        assert status == 200 and body["status"] == "ready"
        doc = get(worker, "/openapi.json")[2]
        assert doc["openapi"].startswith("3.") and "/recommendations/{user_id}" in doc["paths"]
        assert "/users/{user_id}/variant" in doc["paths"]


def test_lists_need_the_token_and_health_does_not(two_workers) -> None:
    first, second, _ = two_workers
    for worker in (first, second):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            for path in ("/recommendations/api-user-0", "/users/api-user-0/variant"):
                status, _, body = get(worker, path, headers)
                assert status == 401 and "bearer token" in body["error"], (headers, path, body)
        status, _, body = get(worker, "/users/api-user-0/variant", BEARER)
        assert status == 200 and body == {"user_id": "api-user-0", "variant": "default", "overrides": {}}
        for path in ("/healthz", "/readyz", "/openapi.json"):
            assert get(worker, path, {})[0] == 200, path


def test_a_request_is_forwarded_at_most_once(stack: LocalStack, two_workers) -> None:
    first, second, owners = two_workers
    partitions = stack.settings().events_partitions
    user = next(f"api-user-{n}" for n in range(100) if owners[partition_for(f"api-user-{n}", partitions)] == second.worker_id)
    # As if the first worker had received it forwarded: it must not forward it on to the owner.
    status, _, body = get(first, f"/recommendations/{user}", {**BEARER, FORWARDED_BY: "some-worker"})
    assert status == 503 and "forwarded this request here" in body["error"], body
    status, _, body = get(first, f"/recommendations/{user}")
    assert status in (200, 404), f"an ordinary request is forwarded and answered by the owner: {body}"


def test_similar_items_answer_from_any_worker_with_reasons(stack: LocalStack, two_workers) -> None:
    """Runs after the lists test, whose events taught co-visitation: item 0 was clicked before item 1 by a user."""
    first, second, _ = two_workers
    catalog = generate_catalog()
    new_item = catalog[-1].item_id  # nobody clicked it: content neighbours only
    answers = []
    for worker in (first, second):
        status, headers, body = get(worker, f"/items/{catalog[0].item_id}/similar?k=7")
        assert status == 200 and headers.get(SERVED_BY) == worker.worker_id, body
        assert len(body["items"]) == 7 and catalog[0].item_id not in {i["item_id"] for i in body["items"]}
        assert body["items"][0]["reason"] == f"people who watched {catalog[0].title} went on to this"
        answers.append(body)
        status, _, body = get(worker, f"/items/{new_item}/similar")
        assert status == 200 and len(body["items"]) == 10
        assert {i["reason"] for i in body["items"]} == {f"similar to {catalog[-1].title}"}
    behaviour = [[i for i in a["items"] if i["reason"].startswith("people who")] for a in answers]
    assert behaviour[0] == behaviour[1], "every worker holds all co-visitation: the same neighbours anywhere"
    for path, status in (("/items/no-such-item/similar", 404), (f"/items/{new_item}/similar?k=0", 400),
                         (f"/items/{new_item}/similar?k=abc", 400), (f"/items/{new_item}/similar?k=101", 400)):
        got, _, body = get(first, path)
        assert got == status and body["error"], (path, body)
    assert get(first, f"/items/{new_item}/similar", {})[0] == 401


def test_request_filters_fall_back_on_stored_candidates_from_any_worker(stack: LocalStack, two_workers) -> None:
    """Runs after the lists test: api-user-0 has a list of 20 items and 30 stored candidates behind them."""
    first, second, _ = two_workers
    categories = {i.item_id: i.categories for i in generate_catalog()}
    stored = get(first, "/recommendations/api-user-0")[2]
    assert len(stored["items"]) == 20 and len(stored["more"]) == 30
    top = stored["items"][0]["item_id"]
    genre = categories[top][0]
    for worker in (first, second):  # one of them forwards, with the query
        status, _, body = get(worker, f"/recommendations/api-user-0?exclude={top}")
        assert status == 200 and [i["item_id"] for i in body["items"]] == [
            i["item_id"] for i in (stored["items"] + stored["more"])[1:21]]
        assert body["truncated"] is False and "more" not in body
        status, _, body = get(worker, f"/recommendations/api-user-0?category={genre}&k=5")
        assert status == 200 and 0 < len(body["items"]) <= 5
        assert all(genre in categories[i["item_id"]] for i in body["items"])
        assert body["truncated"] == (len(body["items"]) < 5)
        status, _, body = get(worker, f"/recommendations/api-user-0?exclude_category={genre}")
        assert status == 200 and not any(genre in categories[i["item_id"]] for i in body["items"])
        for bad in ("k=0", "k=51", "category=", "kk=3"):
            status, _, body = get(worker, f"/recommendations/api-user-0?{bad}")
            assert status == 400 and body["error"], (bad, body)
