"""`recstream evaluate --through-kafka`: the same protocol, scored on the lists a real worker published.

A broker (embedded unless KAFKA_BOOTSTRAP_SERVERS is set) and one `recstream worker` process run
with one event per batch, so every event gets its own published list. The list judged before an
event is the one published for the user's previous event, read back from the recommendations
topic, taken as published (its top k, no exclusions added): it is compared with the in-process
run of the worker's own configuration (`RecstreamModel(published=True)`).
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from models.evaluation.prequential import Report, evaluate
from schemas.records import Event, Item
from streams.kafka.producing import publish_events
from streams.kafka.topics import ensure_topics, topic_specs
from streams.kafka.topics import wait_for_kafka
from streams.kafka.watching import RecommendationWatcher
from streams.lab.stack import LocalStack
from streams.settings import Settings

ROOT = Path(".recstream/evaluate-kafka")


class PublishedLists:
    """A `Model` whose lists are the ones the worker published (keyed by their trigger event)."""

    name = "recstream (through Kafka)"

    def __init__(self, by_trigger: dict[str, list[str]]) -> None:
        self._by_trigger = by_trigger
        self._current: dict[str, list[str]] = {}

    def recommend(self, user_id: str, k: int, exclude: set[str]) -> list[str]:
        return self._current.get(user_id, [])[:k]

    def learn(self, event: Event, seen: set[str]) -> None:
        published = self._by_trigger.get(event.event_id)
        if published is not None:
            self._current[event.user_id] = published


def compare_through_kafka(
    settings: Settings, items: Sequence[Item], events: Sequence[Event], in_process: Report, k: int, tolerance: float,
    timeout: float = 900.0, bootstrap: str | None = None, root: Path = ROOT,
) -> dict[str, Any]:
    """Replay `events` through a broker and a worker, score the published lists, compare with `in_process`.

    `in_process` must be recstream as published, with the same list length (`settings.top_k`).
    """
    shutil.rmtree(root, ignore_errors=True)
    tag = uuid.uuid4().hex[:8]  # own topics and group: a shared Kafka may hold earlier runs
    env = {
        "RECSTREAM_BATCH_MAX": "1",
        "RECSTREAM_TOP_K": str(settings.top_k),
        "RECSTREAM_ENCODER_THREADS": "2",
        "RECSTREAM_APP_ID": f"recstream-eval-{tag}",
        **{f"RECSTREAM_TOPIC_{t.upper()}": f"eval-{tag}.{t}" for t in ("events", "items", "recommendations", "covisits")},
    }
    bootstrap = bootstrap or os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    with LocalStack(root, bootstrap=bootstrap, extra_env=env) as stack:
        local = stack.settings()
        ensure_topics(wait_for_kafka(local, timeout=60), topic_specs(local))
        publisher, _worker = stack.start_worker_with_catalog(items, fresh_state=True, timeout=timeout)
        with RecommendationWatcher(local) as watcher:
            started = time.time()
            publish_events(publisher, local.topic_events, events)
            publisher.flush()
            wanted = {e.event_id for e in events}
            by_trigger: dict[str, list[str]] = {}
            deadline = time.monotonic() + timeout
            while len(by_trigger) < len(wanted) and time.monotonic() < deadline:
                time.sleep(1.0)
                for seen in watcher.snapshot():
                    trigger = seen.value.get("trigger_event_id")
                    if trigger in wanted:
                        by_trigger[trigger] = [r["item_id"] for r in seen.value["items"]]
            seconds = time.time() - started
    report = evaluate(PublishedLists(by_trigger), events, k)
    hit = f"hit@{k}"
    diff = report.metrics[hit] - in_process.metrics[hit]
    return {
        "events": len(events),
        "lists_received": len(by_trigger),
        "seconds": round(seconds, 1),
        hit: round(report.metrics[hit], 6),
        f"in_process_{hit}": round(in_process.metrics[hit], 6),
        "difference": round(diff, 6),
        "tolerance": tolerance,
        "agrees": abs(diff) <= tolerance and len(by_trigger) == len(wanted),
    }
