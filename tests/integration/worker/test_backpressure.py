"""Events offered at several times a worker's throughput: flat memory, lag reported and drained, nothing dropped."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.datasets.synthetic import generate_catalog, generate_events
from streams.lab.reliability.backpressure import remapped, run_backpressure, summary_line
from streams.lab.stack import LocalStack

pytestmark = [pytest.mark.integration, pytest.mark.reliability]


def _overload(stack: LocalStack, tmp_path: Path, rate: float, seconds: float) -> None:
    catalog = generate_catalog()
    base = generate_events(catalog, n_users=400, events_per_user=50)
    events = list(remapped(base, copies=-(-int(rate * seconds) // len(base)), tag=f"{seconds:.0f}s-"))[: int(rate * seconds)]
    publisher, worker = stack.start_worker_with_catalog(catalog, f"backpressure-{int(seconds)}")
    report = run_backpressure(stack.settings(), publisher, worker, events, rate, tmp_path)
    print("\n" + summary_line(report))
    assert report.overload >= 2.0, "the offer must outrun the worker for the test to mean anything"
    assert report.max_lag > 0.5 * (report.offered - report.applied_per_s_during_offer * report.offer_seconds)
    assert report.lag_growth > 0, "the backlog grew during the offer and the gauge showed it"
    # The backlog stays in Kafka: memory stays within the RocksDB budget plus the model and buffers (the
    # backlog itself, held as Python objects, would be several hundred MB more).
    budget = report.rss_mb_start + stack.settings().rocksdb_memory_mb(4) + 150
    assert report.rss_mb_max < budget, [(round(s.t), round(s.rss_mb), s.lag) for s in report.samples]
    assert (report.lost, report.twice) == (0, 0)


def test_a_short_overload_keeps_memory_flat_and_drains(stack: LocalStack, tmp_path: Path) -> None:
    _overload(stack, tmp_path, rate=4_000, seconds=8)


@pytest.mark.slow
def test_one_minute_of_overload_keeps_memory_flat_and_drains(stack: LocalStack, tmp_path: Path) -> None:
    _overload(stack, tmp_path, rate=5_000, seconds=60)
