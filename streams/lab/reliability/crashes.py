"""Process and broker failures during a replay: kill -9 the worker, or freeze the broker (SIGSTOP).

Both end by counting, from `recstream state export`, how many events each user had applied:
anything short of the replay is lost, anything over it was applied twice.
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from schemas.records import Event, Item
from streams.kafka.watching import RecommendationWatcher
from streams.lab.broker import EmbeddedBroker
from streams.lab.reliability.checks import events_per_user, lost_and_twice, replay_in_background, wait_until_applied
from streams.lab.stack import LocalStack, WorkerProcess


@dataclass
class CrashReport:
    events: int
    kills: int
    lost: int
    twice: int
    # Seconds from each kill -9 until a list was published again by the restarted worker.
    recovery_s: list[float] = field(default_factory=list)
    # "user: what differs" for users whose state differs from the run without crashes.
    differing_users: list[str] = field(default_factory=list)
    # The reference itself (a fresh worker reading the whole backlog, no faults) is checked too: a
    # loss there would hide as "the crashed run differs" or, worse, make both agree on a wrong state.
    reference_lost: int = 0
    reference_twice: int = 0


def run_crash_replay(
    stack: LocalStack, catalog: Sequence[Item], events: Sequence[Event], kills: int, rate: float, workdir: Path,
    seed: int = 4,
) -> CrashReport:
    """kill -9 the worker `kills` times at random moments of the replay, restarting it each time.

    The reference is a second worker that reads the same events topic under its own consumer group
    and changelog, without crashes; the two exports must agree user by user.
    """
    settings = stack.settings()
    last_of_user = {e.user_id: e.event_id for e in events}
    publisher, worker = stack.start_worker_with_catalog(catalog, "crashy")
    rng = random.Random(seed)
    recoveries: list[float] = []
    with RecommendationWatcher(settings) as watcher:
        sender = replay_in_background(publisher, settings, events, rate)
        for _ in range(kills):
            time.sleep(rng.uniform(1.0, 5.0))
            worker.stop(sig=signal.SIGKILL)
            killed_at = time.time()
            worker = stack.add_worker("crashy")
            if not watcher.wait_for_any_after(killed_at + 0.5, timeout=120):
                raise TimeoutError(f"no list within 120 s of restarting after a kill -9; see {worker.log_path}")
            recoveries.append(round(time.time() - killed_at, 1))
        sender.join()
    crashed = wait_until_applied(worker.env, workdir / "crashed.jsonl", last_of_user, timeout=300)
    reference = reference_export(stack, workdir, last_of_user)
    sent = events_per_user(events)
    lost, twice = lost_and_twice(sent, crashed)
    reference_lost, reference_twice = lost_and_twice(sent, reference)
    differing = [f"{u}: {diff}" for u in reference if (diff := state_difference(crashed.get(u), reference[u]))]
    return CrashReport(len(events), kills, lost, twice, recoveries, differing, reference_lost, reference_twice)


def reference_export(
    stack: LocalStack, workdir: Path, last_of_user: dict[str, str], timeout: float = 300.0
) -> dict[str, dict]:
    # A new consumer group (with its own changelog) over the same backlog, recommendations topic included.
    ref_env = {**stack.extra_env, "RECSTREAM_APP_ID": stack.extra_env["RECSTREAM_APP_ID"] + "-ref"}
    ref_stack = LocalStack(stack.root / "ref", bootstrap=stack.bootstrap, extra_env=ref_env)
    ref_worker: WorkerProcess = ref_stack.add_worker("reference")
    try:
        ref_worker.wait_ready(timeout=240)
        return wait_until_applied(ref_worker.env, workdir / "reference.jsonl", last_of_user, timeout=timeout)
    finally:
        ref_stack.stop()


def state_difference(got: dict | None, ref: dict) -> str | None:
    """None when the states agree: equal history, and vectors equal within their storage precision.
    Otherwise what differs, for the report.

    Vectors are stored as float16 (11 significant bits). The two runs batch search queries
    differently, and the encoder's output for a query moves in the last float32 bits with the
    padding of its batch; a rounding to float16 can then land one step apart (~5e-4 relative),
    and every later event of that user rounds again from there, so the steps can add up over a
    user's history. The tolerance is a few float16 steps of the vector's largest element: far
    below what one event more or less contributes, and the history fields, compared exactly,
    catch a lost or doubled event regardless.
    """
    if got is None:
        return "missing"
    fields = [k for k in ("events_applied", "last_event_id", "recent", "excluded") if got[k] != ref[k]]
    for k in ("long", "short"):
        a, b = np.asarray(got[k]), np.asarray(ref[k])
        scale = max(1e-12, float(np.max(np.abs(b))))
        if not np.allclose(a, b, rtol=2e-3, atol=4e-3 * scale):
            fields.append(f"{k} (max difference {float(np.max(np.abs(a - b))) / scale:.1e} of the largest element)")
    return ", ".join(fields) or None


@dataclass
class PauseReport:
    events: int
    pause_s: float
    lost: int
    twice: int
    worker_survived: bool


def run_broker_pause(
    broker: EmbeddedBroker, stack: LocalStack, catalog: Sequence[Item], events: Sequence[Event], pause_s: float,
    rate: float, workdir: Path,
) -> PauseReport:
    """Freeze the broker (SIGSTOP) for `pause_s` a few seconds into the replay, then let it go on."""
    settings = stack.settings()
    publisher, worker = stack.start_worker_with_catalog(catalog, "steady")
    sender = replay_in_background(publisher, settings, events, rate)
    time.sleep(4.0)
    broker.signal(signal.SIGSTOP)
    try:
        time.sleep(pause_s)
    finally:
        broker.signal(signal.SIGCONT)
    sender.join()
    last_of_user = {e.user_id: e.event_id for e in events}
    rows = wait_until_applied(worker.env, workdir / "paused.jsonl", last_of_user, timeout=180)
    survived = worker.proc is not None and worker.proc.poll() is None
    lost, twice = lost_and_twice(events_per_user(events), rows)
    return PauseReport(len(events), pause_s, lost, twice, survived)
