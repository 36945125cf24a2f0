"""More than 10,000 hostile messages, drawn by hypothesis, through the real broker into a running worker."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from models.datasets.synthetic import generate_catalog
from streams.lab.reliability.hostile import HOSTILE_KINDS, VALID_KINDS, draw_probes, run_hostile, summary_line
from streams.lab.stack import LocalStack

pytestmark = [pytest.mark.integration, pytest.mark.reliability]


def test_hostile_messages_are_dead_lettered_and_valid_ones_applied(stack: LocalStack, tmp_path: Path) -> None:
    settings = stack.settings()
    catalog = generate_catalog()
    _, worker = stack.start_worker_with_catalog(catalog, "hostile-worker")
    users = [f"user-{n}" for n in range(50)]
    probes = draw_probes(10_000, users, [i.item_id for i in catalog], int(time.time() * 1000))

    report = run_hostile(settings, worker, probes, tmp_path)
    print("\n" + summary_line(report))
    assert report.hostile_tried >= 10_000
    assert set(report.by_kind) == set(HOSTILE_KINDS) | {f"valid:{k}" for k in VALID_KINDS}, "every kind was tried"
    assert report.worker_deaths == 0
    assert report.missing_dead_letters == 0 and report.unexpected_dead_letters == 0
    assert report.dead_lettered == report.hostile_tried
    assert report.reason_mismatches == []
    assert report.bytes_mismatches == 0, "dead letters carry the original bytes"
    assert (report.valid_lost, report.valid_twice) == (0, 0)
