"""A restarted worker keeps its users' state (RocksDB + changelog) and its item index (no re-embedding)."""

from __future__ import annotations

import time

import pytest

from models.datasets.synthetic import generate_catalog
from schemas.records import Event, EventType
from streams.kafka.producing import publish_events
from streams.kafka.watching import RecommendationWatcher
from streams.lab.stack import LocalStack

pytestmark = pytest.mark.integration


def test_state_and_index_survive_a_restart(stack: LocalStack) -> None:
    settings = stack.settings()
    catalog = generate_catalog()
    publisher, worker = stack.start_worker_with_catalog(catalog, "restart-worker")
    embedded_first = worker.metric("recstream_items_embedded_total")
    assert embedded_first == len(catalog)

    now = int(time.time() * 1000)
    bought = [i.item_id for i in catalog if i.categories[0] == "Western"][:3]
    first = [Event(event_id=f"r-{n}", user_id="loyal", type=EventType.PURCHASE, item_id=i, ts=now + n)
             for n, i in enumerate(bought)]
    with RecommendationWatcher(settings) as watcher:
        publish_events(publisher, settings.topic_events, first)
        publisher.flush()
        assert watcher.wait_for_trigger(first[-1].event_id, timeout=15) is not None
    worker.stop()  # SIGTERM: a clean shutdown

    worker = stack.add_worker("restart-worker")
    worker.wait_ready(timeout=240)
    assert (worker.metric("recstream_items_embedded_total") or 0) == 0, "the index came from disk, not re-embedded"
    assert worker.metric("recstream_index_items") == len(catalog)

    # A click after the restart: the earlier purchases must still be excluded, so state survived.
    click = Event(event_id="r-after", user_id="loyal", type=EventType.CLICK, item_id=catalog[0].item_id, ts=now + 10)
    with RecommendationWatcher(settings) as watcher:
        publish_events(publisher, settings.topic_events, [click])
        publisher.flush()
        seen = watcher.wait_for_trigger("r-after", timeout=30)
    assert seen is not None
    ids = {r["item_id"] for r in seen.value["items"]}
    assert not ids & set(bought)
    reasons = " ".join(r["reason"] for r in seen.value["items"])
    assert "because you purchased" in reasons, "history from before the restart still explains the list"
