"""kill -9 a worker again and again during a 20,000-event replay: every event is applied exactly once.

The reference is a second worker that reads the same events topic under its own consumer group and
changelog, without crashes. The two `recstream state export`s must agree user by user.
"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from models.datasets.synthetic import generate_catalog, generate_events
from streams.stack import LocalStack, WorkerProcess
from streams.watching import RecommendationWatcher

from streams.reliability.checks import replay_in_background, wait_until_applied

pytestmark = pytest.mark.integration

N_USERS, PER_USER = 400, 50  # 20,000 events
KILLS = 3
RATE = 800.0


def test_kill_9_during_a_replay_loses_nothing_and_applies_nothing_twice(stack: LocalStack, tmp_path: Path) -> None:
    settings = stack.settings()
    catalog = generate_catalog()
    events = generate_events(catalog, n_users=N_USERS, events_per_user=PER_USER)
    assert len(events) == 20_000
    last_of_user = {e.user_id: e.event_id for e in events}
    publisher, worker = stack.start_worker_with_catalog(catalog, "crashy")
    rng = random.Random(4)
    recoveries: list[float] = []
    with RecommendationWatcher(settings) as watcher:
        sender = replay_in_background(publisher, settings, events, RATE)
        for _ in range(KILLS):
            time.sleep(rng.uniform(1.0, 5.0))
            worker.stop(sig=signal.SIGKILL)
            killed_at = time.time()
            worker = stack.add_worker("crashy")
            # Recommendations resume: a list published after the restart.
            assert watcher.wait_for_any_after(killed_at + 0.5, timeout=120), f"no list after restart; see {worker.log_path}"
            recoveries.append(time.time() - killed_at)
        sender.join()
    env = worker.env
    crashed = wait_until_applied(env, tmp_path / "crashed.jsonl", last_of_user, timeout=300)

    # The reference: same events, its own group and changelog, no crashes.
    ref_env = {**stack.extra_env, "RECSTREAM_APP_ID": stack.extra_env["RECSTREAM_APP_ID"] + "-ref"}
    ref_stack = LocalStack(stack.root / "ref", bootstrap=stack.bootstrap, extra_env=ref_env)
    ref_worker: WorkerProcess = ref_stack.add_worker("reference")
    try:
        ref_worker.wait_ready(timeout=240)
        reference = wait_until_applied(ref_worker.env, tmp_path / "reference.jsonl", last_of_user, timeout=300)
    finally:
        ref_stack.stop()

    print(f"\ncrash-safety: {KILLS} kill -9, {len(events)} events, recovery seconds {[round(r, 1) for r in recoveries]}")
    per_user = {u: sum(1 for e in events if e.user_id == u) for u in last_of_user}
    assert set(crashed) == set(reference) == set(per_user)
    lost = sum(max(0, per_user[u] - crashed[u]["events_applied"]) for u in per_user)
    twice = sum(max(0, crashed[u]["events_applied"] - per_user[u]) for u in per_user)
    assert (lost, twice) == (0, 0), f"{lost} events lost, {twice} applied twice"
    for user, ref in reference.items():
        got = crashed[user]
        assert got["events_applied"] == ref["events_applied"] == per_user[user]
        assert got["last_event_id"] == ref["last_event_id"] == last_of_user[user]
        assert got["recent"] == ref["recent"] and got["excluded"] == ref["excluded"]
        np.testing.assert_allclose(got["long"], ref["long"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got["short"], ref["short"], rtol=1e-5, atol=1e-6)
    assert max(recoveries) < 90, recoveries

