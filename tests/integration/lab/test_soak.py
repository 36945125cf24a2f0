"""The soak, short: two workers on a wide stream while every kind of fault strikes, then per event id
0 lost and 0 doubled, states equal to a fault-free run, hostile messages dead-lettered, erased users
gone. `recstream reliability --soak` runs the long version for RELIABILITY.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.lab.broker import EmbeddedBroker, free_port
from streams.lab.reliability.checks import isolated_env
from streams.lab.reliability.soak import KINDS, run_soak, summary_line
from streams.lab.stack import LocalStack

pytestmark = [pytest.mark.integration, pytest.mark.reliability]


def test_mixed_faults_lose_nothing_and_apply_nothing_twice(tmp_path: Path) -> None:
    # Its own broker: the soak freezes it.
    with EmbeddedBroker(free_port(), log_file=tmp_path / "broker.log") as broker:
        with LocalStack(tmp_path / "soak", bootstrap=broker.bootstrap, extra_env=isolated_env()) as stack:
            # Each drain bounded well inside the test's timeout: a stall then reads as lost events.
            report = run_soak(broker, stack, n_events=8_000, seed=3, workdir=tmp_path, drain_timeout=150)
    print("\n" + summary_line(report))
    print("\n".join(f"{at:7.1f} s  {what}" for at, what in report.timeline))
    happened = " ".join(what for _, what in report.timeline)
    for word in ("kill -9", "frozen", "burst", "hostile", "catalog", "erase"):
        assert word in happened, f"the soak never did: {word} ({report.timeline})"
    assert len(KINDS) == 6
    assert (report.lost, report.twice) == (0, 0), f"{report.lost} lost, {report.twice} applied twice"
    assert (report.reference_lost, report.reference_twice) == (0, 0), "the fault-free reference applied every event once"
    assert report.differing_users == [], report.differing_users[:5]
    assert report.users_compared >= 400
    assert report.hostile_sent > 0 and (report.hostile_missing, report.hostile_wrong_reason) == (0, 0)
    assert report.erased > 0 and report.erased_still_present == 0
    assert report.recovery_s and max(report.recovery_s) < 90
    assert report.rss_mb_max and max(report.rss_mb_max.values()) < 1_500, report.rss_mb_max
