"""A fresh worker reading a pre-filled backlog, again and again: does every event land once?

The simplest run there is (no fault, no rebalance after the first assignment, one worker), and the
one that caught output stages overtaking each other during a commit's drain (RELIABILITY.md). Each
trial gets its own topics and consumer group on the same broker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from schemas.records import Event, Item
from streams.lab.reliability.checks import events_per_user, isolated_env, lost_and_twice, wait_until_applied
from streams.lab.stack import LocalStack


@dataclass
class BacklogTrial:
    events: int
    lost: int
    twice: int
    # The worker's own count of events applied and of events it skipped as already applied.
    applied_metric: float
    duplicates_metric: float


def run_backlog_trials(
    bootstrap: str, root: Path, catalog: Sequence[Item], events: Sequence[Event], trials: int
) -> list[BacklogTrial]:
    last_of_user = {e.user_id: e.event_id for e in events}
    sent = events_per_user(events)
    out: list[BacklogTrial] = []
    for t in range(trials):
        with LocalStack(root / f"trial-{t}", bootstrap=bootstrap, extra_env=isolated_env()) as stack:
            stack.prefill(catalog, events, timeout=300)
            worker = stack.add_worker(f"backlog-{t}")
            worker.wait_ready(timeout=240)
            rows = wait_until_applied(worker.env, root / f"trial-{t}.jsonl", last_of_user, timeout=600)
            lost, twice = lost_and_twice(sent, rows)
            out.append(BacklogTrial(len(events), lost, twice, worker.metric("recstream_events_total") or 0.0,
                                    worker.metric("recstream_events_duplicate_total") or 0.0))
    return out
