"""Two workers in one consumer group: the partitions split, each list comes from its partition's owner,
and nothing is lost or applied twice when the second worker joins or the first one leaves."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.datasets.synthetic import generate_catalog, generate_events
from streams.lab.reliability.scaleout import run_scale_out
from streams.lab.stack import LocalStack

pytestmark = [pytest.mark.integration, pytest.mark.reliability]


def test_a_joining_and_a_leaving_worker_lose_nothing_and_own_their_partitions(stack: LocalStack, tmp_path: Path) -> None:
    catalog = generate_catalog()
    # More than the phases need (about a minute at 250/s): the replay stops after the last phase.
    events = generate_events(catalog, n_users=600, events_per_user=50)
    partitions = stack.settings().events_partitions
    report = run_scale_out(stack, catalog, events, rate=250.0, workdir=tmp_path, partitions=partitions)
    print(f"\nscale-out: joined in {report.join_s} s, left in {report.leave_s} s, shared {report.shared}, "
          f"lists checked {dict(report.checked)}")
    assert (report.lost, report.twice) == (0, 0), f"{report.lost} events lost, {report.twice} applied twice"
    assert sorted(report.shared) == list(range(partitions)) and len(set(report.shared.values())) == 2
    assert report.wrong_owner == [], report.wrong_owner[:10]
    # Every phase really published lists, so the ownership check covered both workers.
    assert all(report.checked[phase] > 0 for phase in ("a alone", "shared", "b alone")), report.checked
