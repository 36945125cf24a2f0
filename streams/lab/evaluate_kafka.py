"""`recstream evaluate --through-kafka`: the same protocol, scored on the lists a real worker published.

A broker (embedded unless KAFKA_BOOTSTRAP_SERVERS is set) and one `recstream worker` process run
with one event per batch, so every event gets its own published list, and the events go out as the
lists come back (a few in flight), in the stream's order as a live stream would. The list judged before an
event is the one published for the user's previous event, read back from the recommendations
topic, taken as published (its top k, no exclusions added): it is compared with the in-process
run of the worker's own configuration (`RecstreamModel(published=True)`).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from models.evaluation.prequential import Report, evaluate
from schemas.records import Event, Item
from streams.kafka.producing import publish_events
from streams.kafka.topics import ensure_topics, topic_specs
from streams.kafka.topics import wait_for_kafka
from streams.kafka.watching import RecommendationWatcher
from streams.lab.stack import LocalStack
from streams.settings import Settings

ROOT = Path(".recstream/evaluate-kafka")
# One event per batch makes every list, changelog entry and co-visit a record batch of its own. The
# embedded broker's fetch cost grows with the batches in a partition (reading the newest 2,000 of
# 2,000 single-record batches took 0.1 s, of 12,000 took 0.9 s), so spreading a long replay over more
# partitions keeps it from slowing down; a user's events still share one partition, in order.
PARTITIONS = 16
# At most this many events published and not yet answered by a list. Published all at once, a
# backlog over 16 partitions is applied out of the stream's order across users (one partition runs
# ahead of another), so co-visitation and popularity saw another past than the in-process replay:
# 50,000 MovieLens events published at once scored 0.0234 hit@10 below the in-process run, paced
# to 32 in flight 0.0082 above (EVALUATION.md). A live stream arrives in order; a small window keeps
# the replay close to that, while still keeping the worker busy.
IN_FLIGHT = 32


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
    timeout: float = 900.0, bootstrap: str | None = None, root: Path = ROOT, partitions: int = PARTITIONS,
    in_flight: int = IN_FLIGHT,
) -> dict[str, Any]:
    """Replay `events` through a broker and a worker, score the published lists, compare with `in_process`.

    `in_process` must be recstream as published, with the same list length (`settings.top_k`).
    """
    shutil.rmtree(root, ignore_errors=True)
    tag = uuid.uuid4().hex[:8]  # own topics and group: a shared Kafka may hold earlier runs
    env = {
        "RECSTREAM_BATCH_MAX": "1",
        "RECSTREAM_EVENTS_PARTITIONS": str(partitions),
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
            by_trigger = _replay_in_order(publisher, local.topic_events, events, watcher, in_flight,
                                          deadline=time.monotonic() + timeout)
            seconds = time.time() - started
    report = evaluate(PublishedLists(by_trigger), events, k)
    hit = f"hit@{k}"
    diff = report.metrics[hit] - in_process.metrics[hit]
    return {
        "events": len(events),
        "in_flight": in_flight,
        "lists_received": len(by_trigger),
        "seconds": round(seconds, 1),
        hit: round(report.metrics[hit], 6),
        f"in_process_{hit}": round(in_process.metrics[hit], 6),
        "difference": round(diff, 6),
        "tolerance": tolerance,
        "agrees": abs(diff) <= tolerance and len(by_trigger) == len({e.event_id for e in events}),
    }


def _replay_in_order(publisher: Any, topic: str, events: Sequence[Event], watcher: RecommendationWatcher,
                     in_flight: int, deadline: float) -> dict[str, list[str]]:
    """Publish `events` keeping at most `in_flight` of them unanswered; return each trigger's list.

    Reads only the lists that arrived since the last look: a whole snapshot each time made a long
    replay quadratic, and at 40,000 lists the loop took most of a core from the worker and broker.
    """
    wanted = {e.event_id for e in events}
    by_trigger: dict[str, list[str]] = {}
    published = read = 0
    bar = tqdm(total=len(wanted), desc="lists through Kafka", unit="list", unit_scale=True, file=sys.stderr,
               disable=None, mininterval=1.0)
    while len(by_trigger) < len(wanted) and time.monotonic() < deadline:
        room = in_flight - (published - len(by_trigger))
        if room > 0 and published < len(events):
            publish_events(publisher, topic, events[published:published + room])
            publisher.flush()
            published = min(len(events), published + room)
        time.sleep(0.02)
        arrived = watcher.snapshot_since(read)
        read += len(arrived)
        for seen in arrived:
            trigger = seen.value.get("trigger_event_id")
            if trigger in wanted and trigger not in by_trigger:
                by_trigger[trigger] = [r["item_id"] for r in seen.value["items"]]
                bar.update(1)
    bar.close()
    return by_trigger
