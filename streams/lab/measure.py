"""Measuring a replay from outside: throughput and event-to-recommendation latency.

Latency is the recommendation's Kafka timestamp minus the moment its trigger event was handed to
the producer: what a downstream subscriber experiences. Lists are coalesced per user and batch,
so only trigger events have a latency of their own.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from schemas.records import Event
from streams.kafka.producing import Publisher, paced, publish_event
from streams.kafka.watching import RecommendationWatcher
from streams.settings import Settings


def machine() -> str:
    """One line for every benchmark report: what the figures were measured on."""
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{platform.machine()}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, Python {platform.python_version()}, "
            "broker: embedded Tansu on the same machine")


@dataclass
class ReplayReport:
    events: int
    rate_offered: float | None
    seconds: float
    events_per_s: float
    lists_received: int
    latency_ms_p50: float
    latency_ms_p95: float
    latency_ms_p99: float
    latency_samples: int

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return statistics.quantiles(sorted_values, n=1000, method="inclusive")[int(q * 1000) - 1] if len(sorted_values) > 1 else sorted_values[0]


def measured_replay(
    settings: Settings, publisher: Publisher, events: Sequence[Event], rate: float | None, settle_timeout: float = 300.0
) -> ReplayReport:
    """Publish `events`, then wait until each user's newest event has produced a list."""
    last_event_of_user = {e.user_id: e.event_id for e in events}
    sent_at: dict[str, float] = {}
    with RecommendationWatcher(settings) as watcher:
        start = time.time()
        for event in paced(events, rate):
            sent_at[event.event_id] = time.time()
            publish_event(publisher, settings.topic_events, event)
        publisher.flush()
        pending = set(last_event_of_user.values())
        deadline = time.monotonic() + settle_timeout
        done_at = time.time()
        while pending and time.monotonic() < deadline:
            for seen in watcher.snapshot():
                trigger = seen.value.get("trigger_event_id")
                if trigger in pending:
                    pending.discard(trigger)
                    done_at = max(done_at, seen.kafka_ts_ms / 1000.0)
            time.sleep(0.2)
        if pending:
            raise TimeoutError(f"{len(pending)} users got no list for their last event within {settle_timeout:.0f}s")
        lists = watcher.snapshot()
    latencies = sorted(
        s.kafka_ts_ms - sent_at[t] * 1000.0 for s in lists if (t := s.value.get("trigger_event_id")) in sent_at
    )
    seconds = max(done_at - start, 1e-9)
    return ReplayReport(
        events=len(events),
        rate_offered=rate,
        seconds=round(seconds, 3),
        events_per_s=round(len(events) / seconds, 1),
        lists_received=len(lists),
        latency_ms_p50=round(_percentile(latencies, 0.50), 2),
        latency_ms_p95=round(_percentile(latencies, 0.95), 2),
        latency_ms_p99=round(_percentile(latencies, 0.99), 2),
        latency_samples=len(latencies),
    )
