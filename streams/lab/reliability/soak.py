"""The soak: two workers on a wide stream while faults of every kind strike at random moments.

The other scenarios each try one fault alone. Here they overlap, as they do in production: kill -9
of either worker (restarted at once), the broker frozen for 5-20 s, 10-second bursts at 5x the
rate, hostile messages, a catalog update, erase events. At the end every event id must be applied
exactly once (the changelog export against the events sent), each user's state must equal that of
a worker that saw the same events without faults, every hostile message must be dead-lettered
with its reason, erased users must be gone, and both workers' memory must have stayed bounded.
Everything is drawn from one seed, so a finding can be replayed.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.datasets.synthetic import generate_catalog, generate_events
from schemas.records import Event, EventType, Item
from streams.kafka.producing import Publisher, make_producer, publish_event, publish_events, publish_items
from streams.kafka.watching import RecommendationWatcher
from streams.lab.broker import EmbeddedBroker
from streams.lab.reliability.backpressure import rss_mb
from streams.lab.reliability.checks import events_per_user, export_states, lost_and_twice, wait_until_applied
from streams.lab.reliability.crashes import reference_export, state_difference
from streams.lab.reliability.hostile import draw_probes, expected_reason, read_dead_letters, send_probes
from streams.lab.stack import LocalStack, WorkerProcess
from streams.settings import Settings

KINDS = ("kill", "broker_pause", "burst", "hostile", "catalog", "erase")


@dataclass
class SoakReport:
    seed: int
    events: int
    rate: float
    # What the two workers applied from a backlog before the soak (None when the rate was given).
    capacity_per_s: float | None = None
    seconds: float = 0.0
    # (seconds since start, what happened), in order.
    timeline: list[tuple[float, str]] = field(default_factory=list)
    lost: int = 0
    twice: int = 0
    # Users whose state differs from the fault-free reference ("user: what differs").
    differing_users: list[str] = field(default_factory=list)
    users_compared: int = 0
    # The fault-free reference is itself checked for lost and doubled events.
    reference_lost: int = 0
    reference_twice: int = 0
    hostile_sent: int = 0
    hostile_missing: int = 0
    hostile_wrong_reason: int = 0
    erased: int = 0
    erased_still_present: int = 0
    # Seconds from each kill -9 to the restarted worker's first published list.
    recovery_s: list[float] = field(default_factory=list)
    rss_mb_max: dict[str, float] = field(default_factory=dict)


def wide_events(n: int, catalog: Sequence[Item], seed: int, per_user: int = 20, block: int = 500) -> list[Event]:
    """`n` events of users with `per_user` events each, interleaved so neighbours differ in user.

    Drawn `block` users at a time (the generator's cost grows with users times events), each block
    under its own seed and user names."""
    users = -(-n // per_user)
    by_user: dict[str, list[Event]] = {}
    for b, first in enumerate(range(0, users, block)):
        drawn = generate_events(list(catalog), seed=seed * 100_000 + b, n_users=min(block, users - first),
                                events_per_user=per_user)
        for e in drawn:
            user = f"{e.user_id}.b{b}"
            by_user.setdefault(user, []).append(e.model_copy(update={"user_id": user}))
    queues = list(by_user.values())
    out: list[Event] = []
    depth = max(len(q) for q in queues)
    for k in range(depth):
        out.extend(q[k] for q in queues if k < len(q))
    return out[:n]


def fault_plan(rng: random.Random, seconds: float) -> list[tuple[float, str]]:
    """Every kind of fault at least once, then one more about every half minute, at random moments
    of the middle of the run (the end is left for the backlog to drain)."""
    count = max(len(KINDS), int(seconds / 30))
    kinds = list(KINDS) + [rng.choice(("kill", "kill", "broker_pause", "burst", "hostile", "erase"))
                           for _ in range(count - len(KINDS))]
    rng.shuffle(kinds)
    times = sorted(rng.uniform(0.1 * seconds, 0.8 * seconds) for _ in kinds)
    return list(zip(times, kinds))


class _Sender(threading.Thread):
    """Publishes the events at `rate`/s, times `boost` while a burst is on; erases users on request
    (their later events are then not sent: an erased user must stay gone)."""

    def __init__(self, publisher: Publisher, topic: str, events: Sequence[Event], rate: float, until: float) -> None:
        super().__init__(daemon=True)
        self.publisher, self.topic, self.events, self.rate, self.until = publisher, topic, events, rate, until
        self.boost = 1.0
        self.sent = 0
        self.erased: set[str] = set()
        self.lock = threading.Lock()

    def run(self) -> None:
        clock = time.monotonic()
        for event in self.events:
            if time.monotonic() > self.until:
                break
            clock += 1.0 / (self.rate * self.boost)
            delay = clock - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -1.0:
                clock = time.monotonic()  # behind by more than a second (a frozen broker): do not rush
            with self.lock:
                if event.user_id not in self.erased:
                    publish_event(self.publisher, self.topic, event)
                self.sent += 1
        self.publisher.flush(timeout=600)

    def erase(self, user_ids: Sequence[str], ts: int) -> None:
        with self.lock:
            self.erased.update(user_ids)
            for user in user_ids:
                publish_event(self.publisher, self.topic, Event(event_id=f"erase-{user}", user_id=user,
                                                                type=EventType.ERASE, ts=ts))


def measure_capacity(settings: Settings, publisher: Publisher, workers: Sequence[WorkerProcess],
                     events: Sequence[Event], timeout: float = 300.0) -> float:
    """Events/s the workers apply together from a backlog of `events` (users of their own)."""
    def applied() -> float:
        return sum(w.metric("recstream_events_total") or 0.0 for w in workers)

    before = applied()
    started = time.monotonic()
    publish_events(publisher, settings.topic_events, events)
    publisher.flush()
    while applied() < before + len(events):
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"the calibration backlog of {len(events)} events was not applied in {timeout:.0f} s")
        time.sleep(0.2)
    return len(events) / (time.monotonic() - started)


def run_soak(
    broker: EmbeddedBroker, stack: LocalStack, n_events: int, seed: int, workdir: Path,
    rate: float | None = None, load: float = 0.7, progress: Callable[[str], None] = lambda _: None,
    minutes: float | None = None, drain_timeout: float = 900.0,
) -> SoakReport:
    """`rate` None: `load` times the two workers' capacity, measured first on a backlog of their own.
    `minutes` stops the sending early; the checks then cover the events sent. `drain_timeout` bounds
    each wait for the workers (and the fault-free reference) to apply everything: past it the
    checks run on what was applied, so a stalled worker shows up as lost events, not as a hang."""
    rng = random.Random(seed)
    catalog = generate_catalog()
    events = wide_events(n_events, catalog, seed)
    settings = stack.settings()
    publisher, first = stack.start_worker_with_catalog(catalog, "soak-a")
    workers: dict[str, WorkerProcess] = {"soak-a": first, "soak-b": stack.add_worker("soak-b")}
    workers["soak-b"].wait_ready(timeout=240)
    capacity = None
    if rate is None:
        calibration = [e.model_copy(update={"user_id": "cal-" + e.user_id, "event_id": "cal-" + e.event_id})
                       for e in wide_events(min(10_000, max(2_000, n_events // 10)), catalog, seed + 1)]
        capacity = measure_capacity(settings, publisher, list(workers.values()), calibration)
        rate = round(load * capacity, 1)
        progress(f"two workers apply {capacity:.0f} wide events/s; soaking at {rate:.0f}/s")
    report = SoakReport(seed=seed, events=len(events), rate=rate, capacity_per_s=capacity)
    rss: dict[str, float] = {}
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.wait(1.0):
            for name, w in list(workers.items()):
                if w.proc is not None and w.proc.poll() is None:
                    try:
                        rss[name] = max(rss.get(name, 0.0), rss_mb(w.proc.pid))
                    except (OSError, LookupError):
                        pass

    threading.Thread(target=sample, daemon=True).start()
    seconds = len(events) / rate if minutes is None else min(len(events) / rate, minutes * 60.0)
    plan = fault_plan(rng, seconds)
    start = time.monotonic()
    used_items = {e.item_id for e in events if e.item_id}
    erased: set[str] = set()
    hostile_at: dict[tuple[int, int], Any] = {}
    limits, now_ms = settings.limits, int(time.time() * 1000)

    def note(what: str) -> None:
        report.timeline.append((round(time.monotonic() - start, 1), what))
        progress(what)

    with RecommendationWatcher(settings, keep_lists=False) as watcher:
        sender = _Sender(Publisher(make_producer(settings)), settings.topic_events, events, rate,
                         until=time.monotonic() + seconds if minutes is not None else float("inf"))
        sender.start()
        for at, kind in plan:
            time.sleep(max(0.0, at - (time.monotonic() - start)))
            if kind == "kill":
                name = rng.choice(sorted(workers))
                workers[name].stop(sig=signal.SIGKILL)
                killed_at = time.time()
                workers[name] = stack.add_worker(name)
                note(f"kill -9 {name}, restarted")
                threading.Thread(target=_time_recovery, args=(watcher, name, killed_at, report), daemon=True).start()
            elif kind == "broker_pause":
                pause = rng.uniform(5.0, 20.0)
                note(f"broker frozen (SIGSTOP) for {pause:.0f} s")
                broker.signal(signal.SIGSTOP)
                try:
                    time.sleep(pause)
                finally:
                    broker.signal(signal.SIGCONT)
            elif kind == "burst":
                note("10 s burst at 5x the rate")
                sender.boost = 5.0
                time.sleep(10.0)
                sender.boost = 1.0
            elif kind == "hostile":
                probes = [p for p in draw_probes(200, [f"hostile-user-{n}" for n in range(5)], sorted(used_items)[:50],
                                                 now_ms, start_seed=rng.randrange(10**6)) if p.hostile]
                where = send_probes(settings, probes)
                hostile_at.update(zip(where, probes))
                note(f"{len(probes)} hostile messages")
            elif kind == "catalog":
                fresh = _catalog_update(catalog, used_items, rng)
                publish_items(publisher, settings.topic_items, fresh)
                publisher.flush()
                note(f"catalog update of {len(fresh)} items")
            elif kind == "erase":
                started = sorted({e.user_id for e in events[: sender.sent]} - erased)
                gone = rng.sample(started, min(len(started), rng.randint(3, 10)))
                sender.erase(gone, int(time.time() * 1000))
                erased.update(gone)
                note(f"erase {len(gone)} users")
        sender.join()
        events = events[: sender.sent]
        report.events = len(events)
        note(f"{len(events)} events sent")

        kept = [e for e in events if e.user_id not in erased]
        last_of_user = {e.user_id: e.event_id for e in kept}
        any_worker = next(iter(workers.values()))
        rows = wait_until_applied(any_worker.env, workdir / "soak.jsonl", last_of_user, timeout=drain_timeout)
        note(f"drained: {sum(rows.get(u, {}).get('last_event_id') == e for u, e in last_of_user.items())} of "
             f"{len(last_of_user)} users at their last event")
        time.sleep(3.0)
        rows = export_states(any_worker.env, workdir / "soak-final.jsonl")
        report.seconds = round(time.monotonic() - start, 1)
    sampling.set()
    report.rss_mb_max = {k: round(v, 1) for k, v in rss.items()}
    report.lost, report.twice = lost_and_twice(events_per_user(kept), rows)
    report.erased = len(erased)
    report.erased_still_present = len(erased & set(rows))

    letters = read_dead_letters(settings, len(hostile_at), timeout=120, allow_duplicates=True)
    report.hostile_sent = len(hostile_at)
    for (partition, offset), probe in hostile_at.items():
        letter = letters.get((settings.topic_events, partition, offset))
        if letter is None:
            report.hostile_missing += 1
        elif letter["reason"] != expected_reason(probe, limits, now_ms):
            report.hostile_wrong_reason += 1

    note("reference run without faults")
    reference = reference_export(stack, workdir, last_of_user, timeout=drain_timeout)
    report.users_compared = len(reference)
    report.reference_lost, report.reference_twice = lost_and_twice(events_per_user(kept), reference)
    report.differing_users = [f"{u}: {d}" for u in sorted(reference) if (d := state_difference(rows.get(u), reference[u]))]
    return report


def _catalog_update(catalog: Sequence[Item], used: set[str], rng: random.Random) -> list[Item]:
    """A few hundred new items, plus new text for items no event names (so states stay comparable
    with the fault-free run, which loads the final catalog before its first event)."""
    unused = [i for i in catalog if i.item_id not in used]
    changed = [i.model_copy(update={"title": (i.title or "") + " (restored edition)"}) for i in unused[:100]]
    base = rng.randrange(10**6)
    new = [catalog[k % len(catalog)].model_copy(update={"item_id": f"soak-new-{base}-{k}"}) for k in range(200)]
    return changed + new


def _time_recovery(watcher: RecommendationWatcher, worker_id: str, killed_at: float, report: SoakReport) -> None:
    """Seconds from the kill until the restarted worker (by its list header) publishes again."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if watcher.last_from_worker.get(worker_id, 0.0) > killed_at + 0.2:
            report.recovery_s.append(round(time.time() - killed_at, 1))
            return
        time.sleep(0.1)


def summary_line(r: SoakReport) -> str:
    faults = [w for _, w in r.timeline if not w.endswith("events sent") and not w.startswith(("reference run", "drained"))]
    return (f"soak (seed {r.seed}): {r.events} events at {r.rate:.0f}/s in {r.seconds:.0f} s with "
            f"{len(faults)} faults; lost {r.lost}, twice {r.twice}; {len(r.differing_users)} of "
            f"{r.users_compared} users differ from the fault-free run; hostile {r.hostile_sent} "
            f"(missing {r.hostile_missing}, wrong reason {r.hostile_wrong_reason}); erased {r.erased} "
            f"(still present {r.erased_still_present}); recovery {r.recovery_s} s; RSS max {r.rss_mb_max} MB")
