"""A new worker with everything to catch up on at once keeps its event loop responsive, and is not
ready until its co-visitation has caught up.

The worker starts on a year of co-visits (published by other workers), a catalog and a backlog of
events from many users at once, and saves its stores every second. Before, the step of a 500-event
batch, a fetch of co-visits and a store save each held the loop for 0.2-1 s (p99 over the run: at
most 1-5 s), and a worker whose catalog came back from disk said it was ready while its
co-visitation was still replaying.
"""

from __future__ import annotations

import random
import shutil
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from models.covisitation import CoVisit
from models.datasets.synthetic import generate_catalog, generate_events
from streams.kafka.producing import Publisher, make_producer
from streams.lab.bench.stream_bench import interleaved
from streams.lab.measure import histogram_quantile
from streams.lab.reliability.checks import isolated_env
from streams.lab.stack import LocalStack, WorkerProcess
from streams.worker.covisit_service import encode_visits

pytestmark = pytest.mark.integration

DAY_MS = 86_400_000
YEAR_END_MS = 1_700_000_000_000  # the backlog's events start here
RECORDS, VISITS_PER_RECORD = 4_000, 100
SOURCES = (10, 11, 12, 13)  # not the events partitions: these marks must not hide the backlog's own visits


@pytest.fixture(scope="module")
def saving_stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    env = {**isolated_env(), "RECSTREAM_COVIS_SAVE_INTERVAL_S": "1", "RECSTREAM_INDEX_SAVE_INTERVAL_S": "1"}
    with LocalStack(tmp_path_factory.mktemp("loop"), bootstrap=kafka_bootstrap, extra_env=env) as s:
        yield s


def publish_a_year_of_covisits(stack: LocalStack, item_ids: list[str]) -> int:
    """What other workers learnt over a year: sessions over a catalog whose popularity is skewed,
    so rows grow long (past the pruning threshold) for the popular items."""
    rng = random.Random(5)
    weights = [1.0 / (rank + 1) for rank in range(len(item_ids))]
    settings = stack.settings()
    publisher = Publisher(make_producer(settings))
    for r in range(RECORDS):
        source = SOURCES[r % len(SOURCES)]
        session = rng.choices(item_ids, weights, k=VISITS_PER_RECORD + 10)
        start = YEAR_END_MS - 365 * DAY_MS + r * (365 * DAY_MS // RECORDS)
        visits = [CoVisit(session[k + 10], start + k * 60_000,
                          tuple((session[k + 10 - d], 1.0 / d) for d in range(1, 11))) for k in range(VISITS_PER_RECORD)]
        offsets = list(range((r // len(SOURCES)) * VISITS_PER_RECORD, (r // len(SOURCES) + 1) * VISITS_PER_RECORD))
        publisher.send(settings.topic_covisits, f"p{source}", encode_visits(source, offsets, visits))
    publisher.flush()
    return RECORDS * VISITS_PER_RECORD


def covisits_seen(worker: WorkerProcess) -> float:
    return (worker.metric("recstream_covisits_applied_total") or 0.0) + (
        worker.metric("recstream_covisits_duplicate_total") or 0.0)


def first_ready(worker: WorkerProcess, timeout: float = 300.0) -> float:
    """Poll /readyz closely; the co-visits counted as seen at the first 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{worker.http_port}/readyz", timeout=2) as resp:
                if resp.status == 200:
                    return covisits_seen(worker)
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"the worker was not ready within {timeout:.0f}s; see {worker.log_path}")


def test_a_catching_up_worker_keeps_its_loop_responsive_and_is_ready_only_when_covisitation_is(
    saving_stack: LocalStack, tmp_path: Path
) -> None:
    catalog = generate_catalog(items_per_genre=40)
    # Many users at once: 1,500 users of 8 events, dealt so consecutive events are different users.
    events = interleaved(generate_events(catalog, n_users=1_500, events_per_user=8, start_ts=YEAR_END_MS))
    saving_stack.prefill(catalog, events)
    prefilled = publish_a_year_of_covisits(saving_stack, [item.item_id for item in catalog])

    worker = saving_stack.add_worker("catching-up")
    seen_when_ready = first_ready(worker)
    assert seen_when_ready >= prefilled, (
        f"ready with {seen_when_ready:.0f} of the {prefilled} co-visits published before it started applied")

    deadline = time.monotonic() + 300
    while (worker.metric("recstream_events_total") or 0) < len(events):
        assert time.monotonic() < deadline, f"the backlog was not applied in time; see {worker.log_path}"
        time.sleep(0.5)
    time.sleep(2.5)  # two more store saves, now with the backlog's co-visits in them

    scrape = worker.metrics()
    p99 = histogram_quantile(scrape, "recstream_event_loop_lag_seconds", 0.99)
    p50 = histogram_quantile(scrape, "recstream_event_loop_lag_seconds", 0.5)
    observed = next(float(line.rsplit(" ", 1)[1]) for line in scrape.splitlines()
                    if line.startswith("recstream_event_loop_lag_seconds_count"))
    buckets = [line for line in scrape.splitlines() if line.startswith("recstream_event_loop_lag_seconds_bucket")]
    print(f"\nloop lag over {observed:.0f} observations: p50 <= {p50} s, p99 <= {p99} s", *buckets, sep="\n")
    in_topic = covisits_seen(worker)

    # The same worker restarted without its co-visit store (a lost volume, say): its catalog index is back
    # from disk in a moment, its co-visitation must be replayed. Ready only once it has been.
    worker.stop()
    shutil.rmtree(saving_stack.root / "data" / worker.worker_id / "covisits")
    restarted = saving_stack.add_worker(worker.worker_id)
    seen_when_ready = first_ready(restarted)
    assert seen_when_ready >= in_topic, (
        f"ready again with {seen_when_ready:.0f} of the {in_topic:.0f} co-visits in the topic applied")

    assert observed >= 100, "too short a run to judge a p99"
    assert p99 is not None and p99 <= 0.02, f"p99 of the event-loop lag is above {p99} s"
