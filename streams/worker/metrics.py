"""Prometheus metrics of a worker. Names are stable: the Grafana dashboard and alerts use them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from schemas.records import EventType

EVENTS_IN = Counter("recstream_events_total", "Valid events applied, by type", ["type"])
EVENTS_DUPLICATE = Counter("recstream_events_duplicate_total", "Redelivered events recognised and skipped")
EVENTS_UNKNOWN_ITEM = Counter("recstream_events_unknown_item_total", "Events naming an item not in the index")
EVENTS_REKEYED = Counter(
    "recstream_events_rekeyed_total", "Events whose Kafka key/partition did not match their user, re-sent keyed by user"
)
STATES_QUARANTINED = Counter(
    "recstream_states_quarantined_total",
    "Stored user states that did not decode: their bytes dead-lettered (state_unreadable), the user started afresh",
)
FETCH_REWINDS = Counter(
    "recstream_fetch_rewinds_total",
    "Fetches that jumped past unread events of a partition (around rebalances): the partition was read again from "
    "where it was read to, instead of those events being committed unapplied",
)
FETCH_HOLES_REFUSED = Counter(
    "recstream_fetch_holes_refused_total",
    "Holes in a partition's offsets that a re-read did not confirm: left unacked, so commits wait until they are read",
)
FETCH_STALLS = Counter(
    "recstream_fetch_stalls_total",
    "Partitions that had events to read but whose read offset did not move for 30 s (the log says what held them)",
)
STEP_RETRIES = Counter("recstream_step_retries_total", "Batches whose step raised and was tried again")
WORKER_FAILURES = Counter(
    "recstream_worker_failures_total",
    "Failures that stopped event processing (nothing committed after them; the worker exits to be restarted)",
    ["error"],
)
DEAD_LETTERED = Counter("recstream_dead_letter_total", "Messages sent to the dead-letter topic", ["topic", "reason"])
RECS_PUBLISHED = Counter("recstream_recommendations_published_total", "Recommendation lists published")
LAST_PUBLISHED = Gauge(
    "recstream_last_published_timestamp_seconds", "When this worker last published a list (epoch s): freshness"
)
E2E_LATENCY = Histogram(
    "recstream_e2e_latency_seconds",
    "Event produced to Kafka (record timestamp) until its recommendation list is published",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
BATCH_SECONDS = Histogram(
    "recstream_batch_seconds",
    "Time to apply one batch: decode, state, ranking, publish",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
BATCH_EVENTS = Histogram("recstream_batch_events", "Events per batch", buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000))
ITEMS_INGESTED = Counter("recstream_items_ingested_total", "Catalog messages applied to the index", ["op"])
ITEMS_EMBEDDED = Counter("recstream_items_embedded_total", "Item texts run through the encoder")
INDEX_SIZE = Gauge("recstream_index_items", "Live (recommendable) items in this worker's index")
ENCODER = Gauge("recstream_encoder", "1 for the item encoder version this worker's lists use, 0 for one it left",
                ["version"])
ENCODER_SWITCHES = Counter("recstream_encoder_switches_total",
                           "New encoder versions rolled out live: catalog embedded again, index switched")
ENCODER_SWITCH_FAILURES = Counter("recstream_encoder_switch_failures_total",
                                  "Encoder versions that could not be loaded or embedded; the worker kept the old one")
COVISITS_APPLIED = Counter("recstream_covisits_applied_total", "Co-visits applied to this worker's store (from all workers)")
COVISITS_DUPLICATE = Counter(
    "recstream_covisits_duplicate_total", "Co-visits re-published after a crash, recognised by offset and skipped"
)
COVISITS_PUBLISHED = Counter("recstream_covisits_published_total", "Co-visits this worker published for its users' events")
COVIS_ITEMS = Gauge("recstream_covisitation_items", "Items in this worker's co-visitation store")
USERS_ERASED = Counter("recstream_users_erased_total", "Erase events applied: state row and list deleted")
CONSUMER_LAG = Gauge(
    "recstream_consumer_lag", "Events in the log not yet applied, per events partition this worker owns", ["topic", "partition"]
)
USERS_IN_STATE = Gauge("recstream_users", "Users with state on this worker's partitions")
PARTITION_OWNED = Gauge(
    "recstream_partition_owned", "1 for each events partition this worker owns now (0 once it moved away)", ["partition"]
)
READY = Gauge("recstream_ready", "1 once the index is loaded and table recovery has finished")
LOOP_LAG = Histogram(
    "recstream_event_loop_lag_seconds",
    "How late the worker's event loop ran a timer due every 0.1 s: how long something held the loop",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
# The online hit measure (EVALUATION.md's prequential hit@k, on live traffic): every applied click,
# browse or purchase of a user who had a list is checked against that list before it is applied.
ONLINE_KS = (1, 5, 10, 20)
ONLINE_EVENTS = Counter(
    "recstream_online_events_total",
    "Clicks, views and purchases by users who had a published list, judged against it before being applied",
    ["variant"],
)
ONLINE_HITS = Counter(
    "recstream_online_hits_total", "Judged events whose item was in the top k of the user's list", ["variant", "k"]
)


def count_online(judged: Iterable[tuple[str, int]]) -> None:
    """Add a batch's judged events: (variant, 1-based rank in the list shown, 0 = not in it)."""
    events: dict[str, int] = {}
    hits: dict[tuple[str, int], int] = {}
    for variant, rank in judged:
        events[variant] = events.get(variant, 0) + 1
        for k in ONLINE_KS:
            if 0 < rank <= k:
                hits[variant, k] = hits.get((variant, k), 0) + 1
    for variant, n in events.items():  # one labelled increment per series, not per event
        ONLINE_EVENTS.labels(variant).inc(n)
    for (variant, k), n in hits.items():
        ONLINE_HITS.labels(variant, str(k)).inc(n)


def start_at_zero(
    events_partitions: int, dead_letter_sources: Mapping[str, Iterable[str]], variants: Iterable[str] = ("default",)
) -> None:
    """Create every labelled series the dashboard plots, at 0, before anything happens.

    A labelled series exists only once it is first set: on a healthy worker the dead-letter panel
    would show "no data" (not 0) until the first bad message, and a rate over a series that appears
    mid-window undercounts. `dead_letter_sources`: topic -> the reasons its messages can fail for.
    """
    for kind in EventType:
        EVENTS_IN.labels(kind.value)
    for topic, reasons in dead_letter_sources.items():
        for reason in reasons:
            DEAD_LETTERED.labels(topic, reason)
    for op in ("upsert", "delete"):
        ITEMS_INGESTED.labels(op)
    for partition in range(events_partitions):
        PARTITION_OWNED.labels(str(partition)).set(0)
    for variant in variants:
        ONLINE_EVENTS.labels(variant)
        for k in ONLINE_KS:
            ONLINE_HITS.labels(variant, str(k))


def serve(host: str, port: int) -> None:
    """Expose /metrics; port 0 turns it off."""
    if port:
        start_http_server(port, addr=host)
