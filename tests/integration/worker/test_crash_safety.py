"""kill -9 a worker again and again during a 15,000-event replay: every event is applied exactly once."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.datasets.synthetic import generate_catalog, generate_events
from streams.lab.reliability.crashes import run_crash_replay
from streams.lab.stack import LocalStack

pytestmark = [pytest.mark.integration, pytest.mark.reliability]


def test_kill_9_during_a_replay_loses_nothing_and_applies_nothing_twice(stack: LocalStack, tmp_path: Path) -> None:
    catalog = generate_catalog()
    events = generate_events(catalog, n_users=300, events_per_user=50)
    assert len(events) == 15_000
    report = run_crash_replay(stack, catalog, events, kills=2, rate=800.0, workdir=tmp_path)
    print(f"\ncrash-safety: {report.kills} kill -9, {report.events} events, recovery seconds {report.recovery_s}")
    assert (report.lost, report.twice) == (0, 0), f"{report.lost} events lost, {report.twice} applied twice"
    assert (report.reference_lost, report.reference_twice) == (0, 0), \
        "the run without crashes (a fresh worker reading the backlog) applied every event once"
    assert report.differing_users == [], "final state equals that of a run without crashes"
    assert len(report.recovery_s) == 2 and max(report.recovery_s) < 90, report.recovery_s
