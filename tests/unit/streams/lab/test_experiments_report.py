"""`recstream experiments report` on real metric pages: counts summed over workers, rates, differences."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry, Counter, generate_latest

from streams.lab.experiments_report import Counts, compare, counts_from_metrics_text, experiments_command, format_rows


def worker_page(counts: dict[str, tuple[int, int]]) -> str:
    """A worker's /metrics text with these (events, hits@10) per variant, as prometheus_client writes it."""
    registry = CollectorRegistry()
    events = Counter("recstream_online_events_total", "", ["variant"], registry=registry)
    hits = Counter("recstream_online_hits_total", "", ["variant", "k"], registry=registry)
    for variant, (n, h) in counts.items():
        events.labels(variant).inc(n)
        hits.labels(variant, "10").inc(h)
        hits.labels(variant, "20").inc(n)  # another cut-off, to be ignored at k=10
    return generate_latest(registry).decode()


def test_counts_are_summed_over_workers_at_the_chosen_cut_off() -> None:
    pages = [worker_page({"default": (1000, 100), "popular": (900, 60)}), worker_page({"default": (500, 50)})]
    counts = counts_from_metrics_text(pages, 10)
    assert counts == Counts({"default": 1500.0, "popular": 900.0}, {"default": 150.0, "popular": 60.0})


def test_the_report_compares_each_variant_with_default() -> None:
    rows = compare(Counts({"popular": 4000, "default": 4000, "new": 40}, {"popular": 320, "default": 480, "new": 4}),
                   min_events=500)
    assert [r.variant for r in rows] == ["default", "new", "popular"]
    default, new, popular = rows
    assert default.rate == pytest.approx(0.12) and default.diff is None
    assert not new.enough and new.rate is None
    assert popular.diff == pytest.approx(-0.04) and popular.diff_high < 0 and popular.p_value < 1e-6
    text = format_rows(rows, 10, 500)
    assert "new: not enough events yet (40 judged, 500 needed)" in text
    assert "popular: 0.0800" in text and "vs default: -0.0400" in text


def test_since_needs_prometheus_and_a_duration() -> None:
    runner = CliRunner()
    out = runner.invoke(experiments_command, ["report", "--since", "1h"])
    assert out.exit_code != 0 and "--since needs --prometheus" in out.output
    out = runner.invoke(experiments_command, ["report", "--prometheus", "http://x", "--since", "an hour"])
    assert out.exit_code != 0 and "30m, 6h or 2d" in out.output
