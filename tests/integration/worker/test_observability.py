"""Prometheus, for real: the project's own scrape config against a running worker; the Grafana
dashboard's every expression names metrics that scrape really has, and evaluates in Prometheus."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from models.datasets.synthetic import generate_catalog
from schemas.records import Event, EventType
from streams.kafka.producing import Publisher, make_producer, publish_events
from streams.kafka.watching import RecommendationWatcher
from streams.lab.broker import free_port
from streams.lab.stack import LocalStack, WorkerProcess

pytestmark = pytest.mark.integration
DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "recstream.json"


@pytest.fixture(scope="module")
def prometheus_tools(require_tool: Callable[..., None]) -> None:
    """The Debian package prometheus (the server and promtool); `make test-tools` installs it."""
    require_tool("prometheus", "promtool")


needs_prometheus = pytest.mark.usefixtures("prometheus_tools")


@pytest.fixture(scope="module")
def fresh_worker(stack: LocalStack) -> tuple[WorkerProcess, Publisher, str]:
    """A ready worker that has seen no event yet, its publisher, and its first scrape once ready."""
    publisher, worker = stack.start_worker_with_catalog(generate_catalog(), "observed")
    return worker, publisher, worker.metrics()


@pytest.fixture(scope="module")
def busy_worker(stack: LocalStack, fresh_worker: tuple[WorkerProcess, Publisher, str]) -> WorkerProcess:
    """The same worker once it has applied events of several types, judged five of them against the lists
    their users had (the online counters), and dead-lettered one message."""
    catalog = generate_catalog()
    worker, publisher, _ = fresh_worker
    settings = stack.settings()
    now = int(time.time() * 1000)
    events = [Event(event_id=f"o-{n}", user_id=f"obs-{n % 5}", type=kind, item_id=catalog[n].item_id, ts=now + n)
              for n, kind in enumerate([EventType.CLICK, EventType.BROWSE, EventType.PURCHASE] * 4)]
    with RecommendationWatcher(settings) as watcher:
        publish_events(publisher, settings.topic_events, events)
        Publisher(make_producer(settings)).send(settings.topic_events, "obs-0", b"{not json")
        publisher.flush()
        assert watcher.wait_for_trigger(events[-1].event_id, timeout=60) is not None
        # When the first round is split over batches, a user's later events are judged already.
        first_round = worker.metric("recstream_online_events_total") or 0.0
        # a second round, judged against the lists the first one left (the online counters)
        judged = [Event(event_id=f"oj-{n}", user_id=f"obs-{n}", type=EventType.CLICK, item_id=catalog[20 + n].item_id,
                        ts=now + 100 + n) for n in range(5)]
        publish_events(publisher, settings.topic_events, judged)
        publisher.flush()
        assert watcher.wait_for_trigger(judged[-1].event_id, timeout=60) is not None
    assert worker.metric("recstream_online_events_total") == first_round + len(judged), \
        "each event of the second round is judged against the list its user's first round left"
    deadline = time.monotonic() + 30
    while not (worker.metric("recstream_dead_letter_total") and worker.metric("recstream_consumer_lag") is not None):
        assert time.monotonic() < deadline, "the dead letter and the lag gauge never showed in the scrape"
        time.sleep(0.5)
    return worker


@pytest.fixture(scope="module")
def prometheus(prometheus_tools: None, busy_worker: WorkerProcess, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[str]:
    """The real Prometheus server with deploy/prometheus as it is, its file targets pointed at the worker."""
    root = tmp_path_factory.mktemp("prometheus")
    shutil.copytree(DEPLOY / "prometheus", root / "config")
    (root / "config" / "targets" / "local.json").write_text(
        json.dumps([{"targets": [f"127.0.0.1:{busy_worker.metrics_port}"]}]))
    url = f"http://127.0.0.1:{free_port()}"
    proc = subprocess.Popen(
        ["prometheus", f"--config.file={root / 'config' / 'prometheus.yml'}", f"--storage.tsdb.path={root / 'data'}",
         f"--web.listen-address={url.removeprefix('http://')}", "--log.level=warn"],
        stdout=open(root / "prometheus.log", "wb"), stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        while not _query(url, "recstream_ready"):
            assert proc.poll() is None, f"prometheus exited; see {root / 'prometheus.log'}"
            assert time.monotonic() < deadline, f"no scrape of the worker within 90 s; see {root / 'prometheus.log'}"
            time.sleep(1.0)
        time.sleep(11.0)  # two more scrapes (5 s interval), so rate() over them has points
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _api(url: str, path: str, **params: str) -> Any:
    try:
        with urllib.request.urlopen(f"{url}{path}?{urllib.parse.urlencode(params)}", timeout=10) as resp:
            return json.loads(resp.read())
    except OSError:
        return None


def _query(url: str, expr: str) -> list[dict[str, Any]]:
    doc = _api(url, "/api/v1/query", query=expr)
    return doc["data"]["result"] if doc and doc.get("status") == "success" else []


def dashboard_exprs() -> list[tuple[str, str]]:
    doc = json.loads(DASHBOARD.read_text())
    return [(panel["title"], target["expr"]) for panel in doc["panels"] for target in panel["targets"]]


def samples(scrape: str) -> dict[str, list[dict[str, str]]]:
    """Metric name -> the label sets of its samples, from Prometheus text."""
    out: dict[str, list[dict[str, str]]] = {}
    for line in scrape.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _, rest = line.partition("{")
        name = name.split(" ")[0]
        labels = dict(re.findall(r'(\w+)="([^"]*)"', rest.split("}")[0])) if rest else {}
        out.setdefault(name, []).append(labels)
    return out


def test_a_fresh_worker_exports_every_series_the_dashboard_plots(stack: LocalStack, fresh_worker) -> None:
    """Before any event: every metric every panel uses is in the first scrape, with its known labels at 0,
    so a healthy worker's panels show zeros, not "no data"."""
    _, _, scrape = fresh_worker
    found = samples(scrape)
    for title, expr in dashboard_exprs():
        for name in set(re.findall(r"\brecstream_[a-z0-9_]+", expr)):
            assert found.get(name), f"panel {title!r}: {name} is not in a fresh worker's first scrape"
    settings = stack.settings()
    assert {s["type"] for s in found["recstream_events_total"]} == {t.value for t in EventType}
    reasons = {s["reason"] for s in found["recstream_dead_letter_total"] if s["topic"] == settings.topic_events}
    assert {"invalid_json", "schema_violation", "too_large", "ts_out_of_range"} <= reasons
    lag = {s["partition"] for s in found["recstream_consumer_lag"]}
    assert lag == {str(p) for p in range(settings.events_partitions)}
    assert found["recstream_event_loop_lag_seconds_bucket"], "the loop-lag histogram is exported"


@needs_prometheus
def test_promtool_accepts_the_config_and_the_workers_metrics(busy_worker: WorkerProcess) -> None:
    check = subprocess.run(["promtool", "check", "config", "--syntax-only", str(DEPLOY / "prometheus" / "prometheus.yml")],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    lint = subprocess.run(["promtool", "check", "metrics"], input=busy_worker.metrics(), capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr


@needs_prometheus
def test_prometheus_scrapes_the_worker_with_the_projects_config(prometheus: str, busy_worker: WorkerProcess) -> None:
    targets = _api(prometheus, "/api/v1/targets")["data"]["activeTargets"]
    ours = [t for t in targets if t["labels"]["instance"] == f"127.0.0.1:{busy_worker.metrics_port}"]
    assert ours and ours[0]["health"] == "up" and ours[0]["labels"]["job"] == "recstream"
    applied = _query(prometheus, "sum(recstream_events_total)")
    assert applied and float(applied[0]["value"][1]) == busy_worker.metric("recstream_events_total")
    reasons = {r["metric"]["reason"] for r in _query(prometheus, "recstream_dead_letter_total")}
    assert "invalid_json" in reasons


@needs_prometheus
def test_every_dashboard_expression_names_scraped_metrics_and_evaluates(prometheus: str) -> None:
    scraped = set(_api(prometheus, "/api/v1/label/__name__/values")["data"])
    assert "recstream_ready" in scraped
    for title, expr in dashboard_exprs():
        names = set(re.findall(r"\brecstream_[a-z0-9_]+", expr))
        assert names and names <= scraped, f"panel {title!r}: {sorted(names - scraped)} not in the worker's scrape"
        doc = _api(prometheus, "/api/v1/query", query=expr)
        assert doc is not None and doc["status"] == "success", f"panel {title!r}: {expr} does not evaluate"


def test_the_dashboard_loads_as_a_grafana_dashboard_model() -> None:
    from grafana_foundation_sdk.cog import plugins
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models import prometheus as prometheus_query
    from grafana_foundation_sdk.models.dashboard import Dashboard

    plugins.register_default_plugins()
    raw = json.loads(DASHBOARD.read_text())
    model = Dashboard.from_json(raw)
    assert model.uid == "recstream" and len(model.panels) == len(raw["panels"])
    for panel in model.panels:
        assert panel.datasource.uid == "prometheus" and panel.targets, panel.title
        assert all(isinstance(t, prometheus_query.Dataquery) for t in panel.targets), panel.title
    again = json.loads(json.dumps(model, cls=JSONEncoder))
    assert [(p["title"], t["expr"]) for p in again["panels"] for t in p["targets"]] == dashboard_exprs()
    required = ["events_total", "e2e_latency_seconds", "consumer_lag", "dead_letter_total", "index_items",
                "items_embedded_total", "users", "last_published_timestamp_seconds"]
    exprs = " ".join(e for _, e in dashboard_exprs())
    assert all(f"recstream_{name}" in exprs for name in required), "every panel the issue asks for"


@needs_prometheus
def test_the_experiments_report_reads_totals_and_windows_from_prometheus(
        prometheus: str, busy_worker: WorkerProcess, fresh_worker, stack: LocalStack) -> None:
    """`recstream experiments report --prometheus`: the totals equal the worker's own counters, and
    `--since` counts only the events judged inside the window (here: after Prometheus started)."""
    from click.testing import CliRunner

    from streams.cli import cli
    from streams.lab.experiments_report import counts_from_metrics_text

    _, publisher, _ = fresh_worker
    settings = stack.settings()
    before = busy_worker.metric("recstream_online_events_total")
    assert before >= 5, "the busy worker's events were judged before Prometheus started"
    catalog = generate_catalog()
    now = int(time.time() * 1000)
    later = [Event(event_id=f"w-{n}", user_id=f"obs-{n}", type=EventType.CLICK, item_id=catalog[40 + n].item_id,
                   ts=now + n) for n in range(3)]
    with RecommendationWatcher(settings) as watcher:
        publish_events(publisher, settings.topic_events, later)
        publisher.flush()
        assert watcher.wait_for_trigger(later[-1].event_id, timeout=60) is not None
    total = busy_worker.metric("recstream_online_events_total")
    assert total == before + len(later)
    deadline = time.monotonic() + 60
    while not (got := _query(prometheus, "sum(recstream_online_events_total)")) or float(got[0]["value"][1]) != total:
        assert time.monotonic() < deadline, "Prometheus never scraped the new online counts"
        time.sleep(1.0)
    time.sleep(6.0)  # one more scrape after the change, so increase() has a sample on each side

    def report(*args: str) -> dict[str, Any]:
        result = CliRunner().invoke(cli, ["experiments", "report", "--prometheus", prometheus, "--json",
                                           "--min-events", "1", *args])
        assert result.exit_code == 0, result.output
        return {row["variant"]: row for row in json.loads(result.output)["variants"]}

    totals = report()
    assert set(totals) == {"default"} and totals["default"]["events"] == total
    assert totals["default"]["hits"] == counts_from_metrics_text([busy_worker.metrics()], 10).hits["default"]
    window = report("--since", "1h")["default"]
    # increase() extrapolates a little past the first and last samples, never back to the earlier events
    assert len(later) <= window["events"] <= len(later) * 1.5 < total, window
    text = CliRunner().invoke(cli, ["experiments", "report", "--prometheus", prometheus, "--since", "1h"])
    assert text.exit_code == 0 and "default: not enough events yet" in text.output, text.output
