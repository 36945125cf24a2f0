"""`recstream experiments report`: each variant's online hit@k, its interval, and its difference to `default`.

The workers count, per variant, the judged events and those whose item was in the top k of the
list the user had (`recstream_online_events_total`, `recstream_online_hits_total`). This reads the
counters from Prometheus (`--prometheus URL`, which can look at a window: `--since 1h`) or straight
from the workers' /metrics endpoints (totals since each worker started), sums them over workers,
and prints the comparison.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import click
from prometheus_client.parser import text_string_to_metric_families

from models.evaluation.proportions import difference, wilson
from models.variants import DEFAULT

EVENTS = "recstream_online_events_total"
HITS = "recstream_online_hits_total"
_DURATION = re.compile(r"^\d+[smhdw]$")


class ReportError(RuntimeError):
    """The counters could not be read; the message says from where and what to check."""


@dataclass(frozen=True)
class Counts:
    events: dict[str, float]
    hits: dict[str, float]  # at the chosen k


def counts_from_metrics_text(texts: Iterable[str], k: int) -> Counts:
    """Sum the online counters of several workers' /metrics pages."""
    events: dict[str, float] = {}
    hits: dict[str, float] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                variant = sample.labels.get("variant")
                if variant is None:
                    continue
                if sample.name == EVENTS:
                    events[variant] = events.get(variant, 0.0) + sample.value
                elif sample.name == HITS and sample.labels.get("k") == str(k):
                    hits[variant] = hits.get(variant, 0.0) + sample.value
    return Counts(events, hits)


def _get(url: str, timeout: float = 10.0) -> str:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.read().decode()
    except (urllib.error.URLError, OSError) as exc:
        raise ReportError(f"could not read {url}: {getattr(exc, 'reason', exc)}") from None


def counts_from_prometheus(url: str, k: int, since: str | None) -> Counts:
    """The counters summed over workers by Prometheus: their increase over `since`, or their totals."""

    def query(expr: str) -> dict[str, float]:
        answer = json.loads(_get(f"{url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"))
        if answer.get("status") != "success":
            raise ReportError(f"Prometheus at {url} refused the query {expr!r}: {answer.get('error', answer)}")
        return {r["metric"].get("variant", "?"): float(r["value"][1]) for r in answer["data"]["result"]}

    def window(series: str) -> str:
        return f"increase({series}[{since}])" if since else series

    hits_at_k = HITS + '{k="' + str(k) + '"}'
    return Counts(query(f"sum by (variant) ({window(EVENTS)})"), query(f"sum by (variant) ({window(hits_at_k)})"))


@dataclass(frozen=True)
class Row:
    variant: str
    events: int
    hits: int
    enough: bool
    rate: float | None = None
    low: float | None = None
    high: float | None = None
    diff: float | None = None
    diff_low: float | None = None
    diff_high: float | None = None
    p_value: float | None = None


def compare(counts: Counts, min_events: int) -> list[Row]:
    """One row per variant, `default` first: rates with intervals, and differences to `default`."""
    names = sorted(counts.events, key=lambda n: (n != DEFAULT, n))
    rows: list[Row] = []
    base_n = int(round(counts.events.get(DEFAULT, 0)))
    base_hits = int(round(counts.hits.get(DEFAULT, 0)))
    for name in names:
        n = int(round(counts.events[name]))
        hits = int(round(counts.hits.get(name, 0)))
        if n < min_events:
            rows.append(Row(name, n, hits, False))
            continue
        interval = wilson(hits, n)
        row = Row(name, n, hits, True, hits / n, interval.low, interval.high)
        if name != DEFAULT and base_n >= min_events:
            d = difference(base_hits, base_n, hits, n)
            row = Row(name, n, hits, True, hits / n, interval.low, interval.high,
                      d.diff, d.interval.low, d.interval.high, d.p_value)
        rows.append(row)
    return rows


def format_rows(rows: list[Row], k: int, min_events: int) -> str:
    lines = [f"online hit@{k} by variant (95% intervals; differences against {DEFAULT!r}, two-proportion test)"]
    for r in rows:
        if not r.enough:
            lines.append(f"  {r.variant}: not enough events yet ({r.events:,} judged, {min_events:,} needed)")
            continue
        line = f"  {r.variant}: {r.rate:.4f} [{r.low:.4f}, {r.high:.4f}] from {r.events:,} events"
        if r.diff is not None:
            line += (f"; vs {DEFAULT}: {r.diff:+.4f} [{r.diff_low:+.4f}, {r.diff_high:+.4f}], p = {r.p_value:.3g}")
        lines.append(line)
    if not rows:
        lines.append("  no variant has judged events yet: are the workers running and receiving events?")
    lines.append("Events of one user are not independent: with a few very active users the intervals are too narrow.")
    return "\n".join(lines)


def rows_as_json(rows: list[Row], k: int, since: str | None) -> dict[str, Any]:
    return {"k": k, "since": since, "variants": [r.__dict__ for r in rows]}


@click.group("experiments")
def experiments_command() -> None:
    """Compare experiment variants (RECSTREAM_VARIANTS) on live traffic."""


@experiments_command.command("report")
@click.option("--prometheus", "prometheus_url", default=None,
              help="Prometheus base URL (e.g. http://127.0.0.1:9090); needed for --since.")
@click.option("--metrics", "metrics_urls", multiple=True,
              help="A worker's /metrics URL (repeat for each worker; default http://127.0.0.1:9108/metrics).")
@click.option("--since", default=None, help="Only events in this window, e.g. 30m, 6h, 2d (with --prometheus).")
@click.option("--k", type=click.Choice(["1", "5", "10", "20"]), default="10", show_default=True, help="Cut-off.")
@click.option("--min-events", type=click.IntRange(1), default=500, show_default=True,
              help="Below this many judged events a variant is reported as not enough yet.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def report_command(prometheus_url: str | None, metrics_urls: tuple[str, ...], since: str | None, k: str,
                   min_events: int, as_json: bool) -> None:
    """Each variant's online hit@k with a 95% interval, and its difference to `default` with a p-value."""
    if since is not None and not _DURATION.match(since):
        raise click.BadParameter("use a number and a unit, e.g. 30m, 6h or 2d", param_hint="--since")
    if since is not None and prometheus_url is None:
        raise click.UsageError("--since needs --prometheus: a worker's /metrics has totals since it started")
    if prometheus_url is not None and metrics_urls:
        raise click.UsageError("give --prometheus or --metrics, not both")
    cut = int(k)
    if prometheus_url is not None:
        counts = counts_from_prometheus(prometheus_url, cut, since)
    else:
        counts = counts_from_metrics_text([_get(u) for u in metrics_urls or ("http://127.0.0.1:9108/metrics",)], cut)
    rows = compare(counts, min_events)
    if as_json:
        click.echo(json.dumps(rows_as_json(rows, cut, since), indent=2))
    else:
        click.echo(format_rows(rows, cut, min_events))

