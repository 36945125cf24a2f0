"""Fresh workers reading a 15,000-event backlog, several times: every event is applied exactly once.

Slow (about 1.5 minutes a trial); `make test-all` and `make test-reliability` run it. The default suite
covers the same run once, as the reference of the crash test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from models.datasets.synthetic import generate_catalog, generate_events
from streams.lab.reliability.backlog import run_backlog_trials
from streams.lab.stack import LocalStack

pytestmark = [pytest.mark.integration, pytest.mark.reliability, pytest.mark.slow]
TRIALS = 6


def test_fresh_workers_on_a_backlog_apply_every_event_once(stack: LocalStack, tmp_path: Path) -> None:
    catalog = generate_catalog()
    events = generate_events(catalog, n_users=300, events_per_user=50)
    assert stack.bootstrap is not None
    trials = run_backlog_trials(stack.bootstrap, tmp_path, catalog, events, TRIALS)
    for t, trial in enumerate(trials):
        print(f"\nbacklog trial {t}: {trial}")
    assert [(t.lost, t.twice) for t in trials] == [(0, 0)] * TRIALS
    assert all(t.applied_metric == len(events) for t in trials), "the worker counted every event as applied"
