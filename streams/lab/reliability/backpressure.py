"""Offer events faster than a worker can apply them: memory must stay flat, lag must show and drain.

The backlog belongs in Kafka, not in the worker: Faust's fetch and stream buffers are bounded, so
RSS should not follow the lag up. Nothing may be dropped: the export must count every event once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from schemas.records import Event
from streams.kafka.producing import Publisher, paced
from streams.lab.reliability.checks import changelog_regressions, events_per_user, lost_and_twice, wait_until_counted
from streams.lab.stack import WorkerProcess
from streams.settings import Settings


@dataclass(frozen=True)
class Sample:
    t: float  # seconds since the offer started
    rss_mb: float
    lag: float
    applied: float


@dataclass
class BackpressureReport:
    offered: int
    offer_seconds: float
    offered_per_s: float
    applied_per_s_during_offer: float
    max_lag: float
    drain_seconds: float
    rss_mb_start: float
    rss_mb_max: float
    rss_mb_end: float
    # RSS when the backlog was largest: a backlog held in memory would show here and fall as it drains.
    rss_mb_at_peak_lag: float
    lag_growth: float
    lost: int
    twice: int
    samples: list[Sample] = field(default_factory=list)
    # Changelog records that go back in a user's history (see checks.changelog_regressions).
    changelog_regressions: list[str] = field(default_factory=list)

    @property
    def overload(self) -> float:
        """How many times the worker's throughput was offered."""
        return self.offered_per_s / max(self.applied_per_s_during_offer, 1e-9)


def remapped(events: Sequence[Event], copies: int, tag: str = "") -> Iterator[Event]:
    """`events` again and again, each copy under its own users and event ids: a longer, wider stream.

    `tag` keeps two streams drawn from the same events apart (their users and ids never meet).
    """
    for k in range(copies):
        suffix = f"~{tag}{k}"
        for e in events:
            yield e.model_copy(update={"user_id": e.user_id + suffix, "event_id": e.event_id + suffix})


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise LookupError(f"no VmRSS for process {pid}")


class _Sampler:
    """Every `interval` s: worker RSS, the lag gauge (summed over partitions), events applied."""

    def __init__(self, worker: WorkerProcess, interval: float = 1.0) -> None:
        assert worker.proc is not None, "start the worker first"
        self.worker, self.pid, self.interval = worker, worker.proc.pid, interval
        self.samples: list[Sample] = []
        self.start = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                lag = self.worker.metric("recstream_consumer_lag") or 0.0
                applied = self.worker.metric("recstream_events_total") or 0.0
                self.samples.append(Sample(time.monotonic() - self.start, rss_mb(self.pid), lag, applied))
            except OSError:
                pass  # a scrape that timed out under load: the next one counts
            self._stop.wait(self.interval)

    def stop(self) -> list[Sample]:
        self._stop.set()
        self._thread.join(timeout=10)
        return self.samples


def run_backpressure(
    settings: Settings,
    publisher: Publisher,
    worker: WorkerProcess,
    events: Sequence[Event],
    rate: float,
    workdir: Path,
    drain_timeout: float = 600.0,
) -> BackpressureReport:
    """Offer `events` at `rate`/s, then wait for the lag to drain and check every event was applied once."""
    values = [(e.user_id, e.model_dump_json(exclude_none=True).encode()) for e in events]
    already = worker.metric("recstream_events_total") or 0.0
    sampler = _Sampler(worker)
    for user_id, value in paced(values, rate):
        publisher.send(settings.topic_events, user_id, value)
    publisher.flush(timeout=300)
    offer_seconds = time.monotonic() - sampler.start
    drained_at = _wait_drained(sampler, already + len(events), drain_timeout)
    samples = sampler.stop()
    expected = events_per_user(events)
    rows = wait_until_counted(worker.env, workdir / "backpressure-export.jsonl", expected, timeout=120)
    lost, twice = lost_and_twice(expected, rows)
    regressions = changelog_regressions(settings)

    during = [s for s in samples if s.t <= offer_seconds]
    first = [s for s in during if s.t <= offer_seconds / 4] or during[:1]
    last = [s for s in during if s.t >= offer_seconds * 3 / 4] or during[-1:]
    applied_during = (during[-1].applied - during[0].applied) / max(during[-1].t - during[0].t, 1e-9)
    return BackpressureReport(
        offered=len(events),
        offer_seconds=round(offer_seconds, 1),
        offered_per_s=round(len(events) / offer_seconds, 1),
        applied_per_s_during_offer=round(applied_during, 1),
        max_lag=max(s.lag for s in samples),
        drain_seconds=round(drained_at - offer_seconds, 1),
        rss_mb_start=round(samples[0].rss_mb, 1),
        rss_mb_max=round(max(s.rss_mb for s in samples), 1),
        rss_mb_end=round(samples[-1].rss_mb, 1),
        rss_mb_at_peak_lag=round(max(samples, key=lambda s: s.lag).rss_mb, 1),
        lag_growth=max(s.lag for s in last) - max(s.lag for s in first),
        lost=lost,
        twice=twice,
        samples=samples,
        changelog_regressions=regressions,
    )


def _wait_drained(sampler: _Sampler, applied_target: float, timeout: float) -> float:
    """Seconds since the offer started when the lag gauge read 0 with every event applied."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sampler.samples:
            s = sampler.samples[-1]
            if s.lag == 0 and s.applied >= applied_target:
                return s.t
        time.sleep(0.5)
    raise TimeoutError(f"the backlog did not drain within {timeout:.0f}s after the offer ended")


def summary_line(r: BackpressureReport) -> str:
    return (f"offered {r.offered} events at {r.offered_per_s:.0f}/s for {r.offer_seconds:.0f}s "
            f"({r.overload:.1f}x the {r.applied_per_s_during_offer:.0f}/s applied meanwhile); lag peaked at "
            f"{r.max_lag:.0f} and drained {r.drain_seconds:.0f}s after the offer; RSS {r.rss_mb_start:.0f} MB at start, "
            f"{r.rss_mb_at_peak_lag:.0f} MB at peak lag, {r.rss_mb_max:.0f} MB max, {r.rss_mb_end:.0f} MB after draining; "
            f"lost {r.lost}, applied twice {r.twice}; changelog records going back {len(r.changelog_regressions)}")

