"""Measuring a replay from outside: throughput and event-to-list latency for every event.

An event's latency runs from the moment it is handed to the producer until a separate subscriber (an
ordinary consumer, as an app runs one) receives a list that reflects it: a list whose trigger is that
event or a later event of the same user. A batch publishes one list per user, for their newest event,
so the earlier events of a batch, which waited longest, are timed by that list too.
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
from streams.kafka.watching import RecommendationWatcher, Seen
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
    # Events timed: every event sent (an event no list ever reflected fails the replay instead).
    latency_samples: int

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return statistics.quantiles(sorted_values, n=1000, method="inclusive")[int(q * 1000) - 1] if len(sorted_values) > 1 else sorted_values[0]


def event_latencies_ms(events: Sequence[Event], sent_at: Sequence[float], lists: Sequence[Seen]) -> list[float]:
    """Per event: when the first list reflecting it was received, minus when it was sent (ms).

    Lists are taken in the order they were received; a list for user u triggered by u's k-th event
    reflects u's events up to k that no earlier list reflected.
    """
    position: dict[str, tuple[str, int]] = {}
    sequence: dict[str, list[int]] = {}
    for i, e in enumerate(events):
        seq = sequence.setdefault(e.user_id, [])
        position[e.event_id] = (e.user_id, len(seq))
        seq.append(i)
    timed: dict[str, int] = {}  # user -> how many of their events are timed
    out: list[float] = []
    for seen in sorted(lists, key=lambda s: s.received_at):
        where = position.get(seen.value.get("trigger_event_id", ""))
        if where is None or where[0] != seen.user_id:
            continue
        user, k = where
        for j in range(timed.get(user, 0), k + 1):
            out.append((seen.received_at - sent_at[sequence[user][j]]) * 1000.0)
        timed[user] = max(timed.get(user, 0), k + 1)
    return out


def measured_replay(
    settings: Settings, publisher: Publisher, events: Sequence[Event], rate: float | None, settle_timeout: float = 300.0
) -> ReplayReport:
    """Publish `events` at `rate`/s (None: at once), then wait until every event is reflected in a list
    the subscriber received; every event's latency is timed."""
    last_event_of_user = {e.user_id: e.event_id for e in events}
    sent_at = [0.0] * len(events)
    with RecommendationWatcher(settings) as watcher:
        start = time.time()
        for i, event in enumerate(paced(events, rate)):
            sent_at[i] = time.time()
            publish_event(publisher, settings.topic_events, event)
        publisher.flush()
        pending = set(last_event_of_user.values())
        deadline = time.monotonic() + settle_timeout
        done_at = time.time()
        seen_upto = 0
        while pending and time.monotonic() < deadline:
            lists = watcher.snapshot()
            for seen in lists[seen_upto:]:
                trigger = seen.value.get("trigger_event_id")
                if trigger in pending:
                    pending.discard(trigger)
                    done_at = max(done_at, seen.received_at)
            seen_upto = len(lists)
            time.sleep(0.2)
        if pending:
            raise TimeoutError(f"{len(pending)} users got no list for their last event within {settle_timeout:.0f}s")
        lists = watcher.snapshot()
    latencies = sorted(event_latencies_ms(events, sent_at, lists))
    if len(latencies) != len(events):
        raise AssertionError(f"{len(events) - len(latencies)} of {len(events)} events were never reflected in a list")
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


def histogram_quantile(scrape: str, name: str, q: float) -> float | None:
    """The `q` quantile of an unlabelled Prometheus histogram in a /metrics scrape, as the upper bound
    of the bucket it falls in (no interpolation: a bound the true quantile does not exceed).

    None before the first observation; +inf if it lies beyond the largest bucket.
    """
    buckets: list[tuple[float, float]] = []
    prefix = f'{name}_bucket{{le="'
    for line in scrape.splitlines():
        if line.startswith(prefix):
            bound, count = line[len(prefix):].split('"}', 1)
            buckets.append((float(bound), float(count)))
    buckets.sort()
    if not buckets or buckets[-1][1] == 0:
        return None
    total = buckets[-1][1]
    return next(bound for bound, count in buckets if count >= q * total)
