"""Events in Kafka become fresh, relevant, filtered recommendation lists in Kafka, through a real worker."""

from __future__ import annotations

import base64
import json
import time

import jsonschema
import pytest
from confluent_kafka import Producer

from models.datasets.synthetic import generate_catalog
from schemas.records import Event, EventType, Item, json_schema
from streams.kafka.producing import Publisher, make_producer, publish_events, publish_items
from streams.kafka.watching import RecommendationWatcher, read_topic
from streams.lab.stack import LocalStack, WorkerProcess

pytestmark = pytest.mark.integration

CATALOG = generate_catalog()
GENRE_OF = {i.item_id: i.categories[0] for i in CATALOG}


def purchase(user: str, item_id: str, n: int, kind: EventType = EventType.PURCHASE) -> Event:
    return Event(event_id=f"{user}-{n}", user_id=user, type=kind, item_id=item_id, ts=int(time.time() * 1000) + n)


@pytest.fixture(scope="module")
def worker(stack: LocalStack) -> WorkerProcess:
    _publisher, w = stack.start_worker_with_catalog(CATALOG)
    return w


@pytest.fixture()
def settings(stack: LocalStack):
    return stack.settings()


@pytest.fixture()
def publisher(settings) -> Publisher:
    return Publisher(make_producer(settings))


@pytest.fixture()
def watcher(settings, worker):
    with RecommendationWatcher(settings) as w:
        yield w


def send(publisher: Publisher, settings, events: list[Event]) -> None:
    publish_events(publisher, settings.topic_events, events)
    publisher.flush()


def test_scifi_buyer_gets_scifi_and_never_a_purchased_item(worker, settings, publisher, watcher) -> None:
    scifi = [i for i in CATALOG if i.categories[0] == "Sci-Fi"][:3]
    events = [purchase("fan-1", item.item_id, n) for n, item in enumerate(scifi)]
    sent = time.time()
    send(publisher, settings, events)
    seen = watcher.wait_for_trigger(events[-1].event_id, timeout=10)
    assert seen is not None, "no list for the last purchase"
    assert seen.received_at - sent < 2.0, "a warm worker answers within a couple of seconds"
    value = seen.value
    jsonschema.validate(value, json_schema("recommendation"))
    ids = [r["item_id"] for r in value["items"]]
    assert len(ids) == 20 and len(set(ids)) == 20
    assert not set(ids) & {i.item_id for i in scifi}
    assert sum(GENRE_OF[i] == "Sci-Fi" for i in ids) >= 15
    titles = {i.title for i in scifi}
    assert all(any(t in r["reason"] for t in titles) for r in value["items"]), value["items"][:3]
    assert value["user_id"] == "fan-1" and value["trigger_event_id"] == events[-1].event_id


def test_search_steers_the_list_and_explains_itself(worker, settings, publisher, watcher) -> None:
    event = Event(event_id="searcher-1", user_id="searcher", type=EventType.SEARCH,
                  query="haunted house ghost horror", ts=int(time.time() * 1000))
    send(publisher, settings, [event])
    seen = watcher.wait_for_trigger(event.event_id, timeout=10)
    assert seen is not None
    items = seen.value["items"]
    assert sum(GENRE_OF[r["item_id"]] == "Horror" for r in items) >= 12
    assert all(r["reason"] == "matches your search 'haunted house ghost horror'" for r in items)


def test_bad_messages_are_dead_lettered_and_the_worker_keeps_going(worker, settings, publisher, watcher) -> None:
    big = b'{"pad": "' + b"x" * 900_000 + b'"}'  # its dead letter (base64) is over the 1 MB Kafka default
    bad = [b"not json at all", b'{"event_id": "x", "user_id": "u", "type": "teleport", "ts": 1}', b"\xff\xfe\xfd", big]
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap})
    for value in bad:
        producer.produce(settings.topic_events, key=b"dlq-user", value=value)
    producer.flush(10)
    good = purchase("after-bad", CATALOG[0].item_id, 0)
    send(publisher, settings, [good])
    assert watcher.wait_for_trigger(good.event_id, timeout=15) is not None

    letters = [json.loads(m.value()) for m in read_topic(settings, settings.topic_dead_letter, len(bad), timeout=20)]
    originals = {base64.b64decode(d["original_b64"]) for d in letters}
    assert originals == set(bad)
    reasons = {base64.b64decode(d["original_b64"]): d["reason"] for d in letters}
    assert reasons[b"not json at all"] == "invalid_json"
    assert reasons[b"\xff\xfe\xfd"] == "invalid_json"
    assert reasons[bad[1]] == "schema_violation"
    assert reasons[big] == "too_large"
    assert worker.proc is not None and worker.proc.poll() is None


def test_unknown_items_and_unkeyed_events_are_handled(worker, settings, publisher, watcher) -> None:
    unknown = purchase("stray", "no-such-item", 0)
    send(publisher, settings, [unknown])
    seen = watcher.wait_for_trigger(unknown.event_id, timeout=10)
    assert seen is not None, "an unknown item is not fatal: the user still gets (popular) items"
    # Produced with no key: the worker re-keys it by user so it meets that user's state.
    keyless = purchase("stray", CATALOG[5].item_id, 1)
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap})
    producer.produce(settings.topic_events, value=keyless.model_dump_json().encode())
    producer.flush(10)
    seen = watcher.wait_for_trigger(keyless.event_id, timeout=10)
    assert seen is not None
    assert CATALOG[5].item_id not in {r["item_id"] for r in seen.value["items"]}


def test_new_item_becomes_recommendable_and_deleted_items_vanish(worker, settings, publisher, watcher) -> None:
    new = [
        Item(item_id="zx-1", title="Zorblax Space Pirates (2031)", categories=["Sci-Fi"], description="space pirates raid a star freighter"),
        Item(item_id="zx-2", title="Zorblax Space Pirates II (2033)", categories=["Sci-Fi"], description="space pirates return to raid the star freighters"),
    ]
    publish_items(publisher, settings.topic_items, new)
    publisher.flush()
    time.sleep(1.0)  # the item must be recommendable within a second
    event = purchase("pirate-fan", "zx-1", 0)
    send(publisher, settings, [event])
    seen = watcher.wait_for_trigger(event.event_id, timeout=10)
    assert seen is not None
    assert seen.value["items"][0]["item_id"] == "zx-2"
    assert "Zorblax Space Pirates (2031)" in seen.value["items"][0]["reason"]

    publish_items(publisher, settings.topic_items, [Item(item_id="zx-2", op="delete")])
    publisher.flush()
    time.sleep(1.0)
    again = purchase("pirate-fan", CATALOG[0].item_id, 1, EventType.CLICK)
    send(publisher, settings, [again])
    seen = watcher.wait_for_trigger(again.event_id, timeout=10)
    assert seen is not None
    assert "zx-2" not in {r["item_id"] for r in seen.value["items"]}


def test_metrics_are_exported(worker, settings, publisher, watcher) -> None:
    event = purchase("metrics-user", CATALOG[3].item_id, 0)
    send(publisher, settings, [event])
    assert watcher.wait_for_trigger(event.event_id, timeout=10) is not None
    text = worker.metrics()
    for name in ("recstream_events_total", "recstream_dead_letter_total", "recstream_recommendations_published_total",
                 "recstream_e2e_latency_seconds_bucket", "recstream_index_items", "recstream_users"):
        assert name in text, name
    assert worker.metric("recstream_index_items") >= len(CATALOG)
    assert (worker.metric("recstream_events_total") or 0) >= 1
    assert (worker.metric("recstream_recommendations_published_total") or 0) >= 1
    assert (worker.metric("recstream_e2e_latency_seconds_count") or 0) >= 1
