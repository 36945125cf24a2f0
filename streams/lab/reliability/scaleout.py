"""Scale-out: a second worker joins the consumer group mid-replay, then the first one leaves.

Checked from outside, as an operator would: each worker's `recstream_partition_owned` gauge says
which events partitions it owns, every published list says which worker made it (the
`recstream-worker` header), and `recstream state export` counts what each user had applied.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from schemas.records import Event, Item
from streams.kafka.topics import partition_for
from streams.kafka.watching import RecommendationWatcher, Seen
from streams.lab.reliability.checks import events_per_user, lost_and_twice, replay_in_background, wait_until_applied
from streams.lab.stack import LocalStack, StackError, WorkerProcess

_OWNED = re.compile(r'^recstream_partition_owned\{partition="(\d+)"\} 1(\.0)?$', re.M)

Owners = dict[int, str]  # events partition -> the worker id owning it


@dataclass
class ScaleOutReport:
    events: int
    lost: int
    twice: int
    # Seconds from starting the second worker until both owned partitions, and from stopping the
    # first until the second owned them all.
    join_s: float
    leave_s: float
    shared: Owners
    # Lists whose publishing worker was compared with the partition's owner at the time, by phase.
    checked: Counter[str] = field(default_factory=Counter)
    # Lists published by a worker that did not own the user's partition (or in the wrong partition).
    wrong_owner: list[str] = field(default_factory=list)


def owned_partitions(worker: WorkerProcess) -> set[int]:
    try:
        return {int(m.group(1)) for m in _OWNED.finditer(worker.metrics())}
    except OSError:
        return set()


def current_owners(workers: Sequence[WorkerProcess]) -> Owners:
    owners: Owners = {}
    for worker in workers:
        for partition in owned_partitions(worker):
            if partition in owners:  # two owners: the gauges are mid-rebalance
                return {}
            owners[partition] = worker.worker_id
    return owners


def wait_for_owners(
    workers: Sequence[WorkerProcess], partitions: int, settled: Callable[[Owners], bool], timeout: float
) -> Owners:
    """Until every partition has exactly one owner among `workers` and `settled(owners)` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        owners = current_owners(workers)
        if len(owners) == partitions and settled(owners):
            return owners
        time.sleep(0.5)
    raise StackError(f"partitions not settled among {[w.worker_id for w in workers]} within {timeout:.0f}s "
                     f"(last seen: {current_owners(workers)}); see {[str(w.log_path) for w in workers]}")


def run_scale_out(
    stack: LocalStack, catalog: Sequence[Item], events: Sequence[Event], rate: float, workdir: Path,
    partitions: int, window_s: float = 5.0, tail_s: float = 5.0,
) -> ScaleOutReport:
    """Worker A alone, then A and B together, then B alone (for `tail_s`), with the replay running
    throughout; the replay stops there, so `events` should outlast the phases (it fails otherwise)."""
    settings = stack.settings()
    publisher, first = stack.start_worker_with_catalog(catalog, "scale-a")
    with RecommendationWatcher(settings) as watcher:
        sender = replay_in_background(publisher, settings, events, rate)
        time.sleep(3.0)
        alone_until = time.time()
        second = stack.add_worker("scale-b")
        shared = wait_for_owners(
            [first, second], partitions, lambda o: len(set(o.values())) == 2 and second.is_ready(), timeout=240
        )
        join_s = time.time() - alone_until
        window = (time.time(), time.time() + window_s)
        time.sleep(window_s)
        if current_owners([first, second]) != shared:
            raise StackError("the partitions moved again while both workers ran; see the worker logs")
        left_at = time.time()
        first.stop()
        wait_for_owners([second], partitions, lambda o: True, timeout=120)
        leave_s = time.time() - left_at
        second_alone_from = time.time()
        time.sleep(tail_s)
        if not sender.is_alive():
            raise StackError(f"the replay of {len(events)} events ended before the last phase: offer more events")
        sender.stop()
        events = sender.published
        rows = wait_until_applied(second.env, workdir / "scaled.jsonl", {e.user_id: e.event_id for e in events}, 300)
        time.sleep(1.0)  # the last lists reach the watcher
        seen = watcher.snapshot()
    lost, twice = lost_and_twice(events_per_user(events), rows)
    report = ScaleOutReport(len(events), lost, twice, round(join_s, 1), round(leave_s, 1), shared)
    phases: list[tuple[str, float, float, Callable[[int], str]]] = [
        ("a alone", 0.0, alone_until, lambda p: first.worker_id),
        ("shared", *window, lambda p: shared[p]),
        ("b alone", second_alone_from, float("inf"), lambda p: second.worker_id),
    ]
    for list_seen in seen:
        _check_owner(list_seen, partitions, phases, report)
    return report


def _check_owner(
    seen: Seen, partitions: int, phases: Sequence[tuple[str, float, float, Callable[[int], str]]], report: ScaleOutReport
) -> None:
    if seen.partition != partition_for(seen.user_id, partitions):
        report.wrong_owner.append(f"{seen.user_id}: list in partition {seen.partition}")
        return
    published = seen.kafka_ts_ms / 1000.0
    for name, start, end, owner in phases:
        if start <= published < end:
            report.checked[name] += 1
            if seen.worker != owner(seen.partition):
                report.wrong_owner.append(
                    f"{seen.user_id} (partition {seen.partition}, {name}): published by {seen.worker}, "
                    f"owner {owner(seen.partition)}"
                )
