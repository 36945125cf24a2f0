"""`recstream bench`: every performance figure of issue 5, measured on this machine, into BENCHMARKS.md."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from models.datasets.synthetic import generate_catalog
from schemas.records import Item
from streams.kafka.producing import publish_events
from streams.lab import sources
from streams.lab.bench import index_bench
from streams.lab.bench.stream_bench import backlog_throughput, item_ingestion, latency_at_rate, state_size, wide_stream
from streams.lab.broker import EmbeddedBroker, free_port
from streams.lab.markdown_sections import publish_report
from streams.lab.measure import machine
from streams.lab.reliability.checks import isolated_env
from streams.lab.stack import LocalStack
from streams.settings import Settings

FULL = {"runs": 3, "backlog": 200_000, "latency_events": 10_000, "rate": 1_000.0, "new_items": 500,
        "index_items": 100_000, "users": 100_000, "eval_fraction": 0.3}
QUICK = {"runs": 1, "backlog": 20_000, "latency_events": 3_000, "rate": 1_000.0, "new_items": 300,
         "index_items": 20_000, "users": 10_000, "eval_fraction": 0.1}
TARGETS = {"events_per_s": 5_000, "latency_p99_ms": 50, "items_per_s": 400, "index_recall_at_10": 0.98,
           "index_qps": 5_000, "bytes_per_user": 2_048}


def _spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def new_items(n: int, tag: str) -> list[Item]:
    """`n` catalog items nobody has seen: generated titles under fresh ids, so each is embedded."""
    base = generate_catalog()
    return [base[i % len(base)].model_copy(update={"item_id": f"new-{tag}-{i}",
                                                   "title": f"{base[i % len(base)].title} {tag} {i}"})
            for i in range(n)]


def run(plan: dict[str, Any], source: sources.Source, root: Path, say: Any) -> dict[str, Any]:
    catalog = source.items()
    base = source.events(min(100_000, plan["backlog"]))
    out: dict[str, Any] = {"machine": machine(), "source": source.name, "catalog_items": len(catalog), "plan": plan}
    with EmbeddedBroker(free_port(), log_file=root / "broker.log") as broker:
        def stack(name: str, **env: str) -> LocalStack:
            return LocalStack(root / name, bootstrap=broker.bootstrap, extra_env={**isolated_env(), **env})

        throughput = []
        for r in range(plan["runs"]):
            say(f"throughput run {r + 1}: backlog of {plan['backlog']} events")
            with stack(f"throughput-{r}") as s:
                throughput.append(backlog_throughput(s, catalog, wide_stream(base, plan["backlog"], f"t{r}-")))
        out["throughput_runs"] = throughput

        with stack("latency") as s:
            publisher, worker = s.start_worker_with_catalog(catalog, "latency", timeout=900)
            latency = []
            for r in range(plan["runs"]):
                say(f"latency run {r + 1}: {plan['latency_events']} events at {plan['rate']:.0f}/s")
                events = wide_stream(base, plan["latency_events"], f"l{r}-")
                latency.append(latency_at_rate(s.settings(), publisher, events, plan["rate"]))
            out["latency_runs"] = latency
            say(f"item ingestion: {plan['new_items']} new items, fp32 encoder")
            out["items_fp32"] = [item_ingestion(s.settings(), publisher, worker, new_items(plan["new_items"], f"f{r}"))
                                 for r in range(plan["runs"])]
        with stack("items-int8", RECSTREAM_ENCODER_INT8="1") as s:
            publisher, worker = s.start_worker_with_catalog(catalog, "int8", timeout=900)
            say(f"item ingestion: {plan['new_items']} new items, int8 encoder")
            out["items_int8"] = [item_ingestion(s.settings(), publisher, worker, new_items(plan["new_items"], f"q{r}"))
                                 for r in range(plan["runs"])]

        say(f"state size and RSS after {plan['users']} users")
        with stack("users") as s:
            publisher, worker = s.start_worker_with_catalog(catalog, "users", timeout=900)
            events = wide_stream(base, plan["users"], "u-", events_per_user=1)
            publish_events(publisher, s.settings().topic_events, events)
            publisher.flush(600)
            deadline = time.monotonic() + 1800
            while (worker.metric("recstream_events_total") or 0) < len(events):
                if time.monotonic() > deadline:
                    raise TimeoutError("the users run did not finish within 30 minutes")
                time.sleep(1.0)
            out["state"] = state_size(s, worker, len(events))

    say(f"index: {plan['index_items']} synthetic 384-d items")
    out["index"] = index_bench.run(n=plan["index_items"])
    say("encoder quality: prequential hit@10 with the fp32 and the int8 encoder")
    out["encoder_quality"] = {name: _hit_at_10(root, plan["eval_fraction"], int8) for name, int8 in
                              (("fp32", False), ("int8", True))}
    return summarise(out)


def _hit_at_10(root: Path, fraction: float, int8: bool) -> float:
    """`recstream evaluate` in a subprocess, as a user runs it, with or without the int8 encoder."""
    report = root / f"eval-{'int8' if int8 else 'fp32'}.json"
    env = {**os.environ, "RECSTREAM_ENCODER_INT8": "1" if int8 else "0"}
    subprocess.run([sys.executable, "-m", "streams.cli", "evaluate", "--no-baselines", "--fraction", str(fraction),
                    "--json", str(report)], env=env, check=True, capture_output=True, timeout=3600)
    return float(json.loads(report.read_text())["recstream"]["hit@10"])


def summarise(out: dict[str, Any]) -> dict[str, Any]:
    """The headline keys (medians) next to the runs they come from."""
    lat = out["latency_runs"]
    good = [s for s in out["index"]["sweep"] if s["recall_at_10"] >= TARGETS["index_recall_at_10"]]
    chosen = max(good, key=lambda s: s["queries_per_s"]) if good else max(out["index"]["sweep"], key=lambda s: s["recall_at_10"])
    quality = out["encoder_quality"]
    out.update({
        "events_per_s": statistics.median(r["events_per_s"] for r in out["throughput_runs"]),
        "latency_ms": {q: statistics.median(r[f"latency_ms_{q}"] for r in lat) for q in ("p50", "p95", "p99")},
        "items_per_s": statistics.median(r["items_per_s"] for r in out["items_int8"]),
        "items_per_s_fp32": statistics.median(r["items_per_s"] for r in out["items_fp32"]),
        "int8_hit_at_10_change": round(quality["int8"] / quality["fp32"] - 1.0, 4),
        "index_recall_at_10": chosen["recall_at_10"],
        "index_qps": chosen["queries_per_s"],
        "index_ef_search": chosen["ef_search"],
        "bytes_per_user": out["state"]["bytes_per_user"],
        "worker_rss_mb": out["state"]["worker_rss_mb"],
    })
    return out


def markdown(r: dict[str, Any], command: str) -> str:
    def runs(values: list[float]) -> str:
        s = _spread(values)
        return f"{s['median']:,.1f} ({s['min']:,.1f}–{s['max']:,.1f})"

    def met(ok: bool, value: float, target: float) -> str:
        return "met" if ok else f"**missed** by {abs(value / target - 1) * 100:.0f}%"

    t, lat = r["throughput_runs"], r["latency_runs"]
    q = r["encoder_quality"]
    return "\n".join([
        f"Command: `{command}`  ",
        f"Machine: {r['machine']}  ",
        f"Data: {r['source']}, {r['catalog_items']} catalog items; one worker, 4 partitions; medians of "
        f"{len(t)} runs with (min–max).",
        "",
        "| measure | result | target | |",
        "|---|---|---|---|",
        f"| sustained throughput, pre-filled backlog of {t[0]['events']:,} events from {t[0]['users']:,} users, events/s "
        f"| {runs([x['events_per_s'] for x in t])} | ≥ 5,000 | {met(r['events_per_s'] >= 5000, r['events_per_s'], 5000)} |",
        f"| latency p50 at {r['plan']['rate']:,.0f} events/s, ms | {runs([x['latency_ms_p50'] for x in lat])} | | |",
        f"| latency p95, ms | {runs([x['latency_ms_p95'] for x in lat])} | | |",
        f"| latency p99, ms | {runs([x['latency_ms_p99'] for x in lat])} | ≤ 50 | "
        f"{met(r['latency_ms']['p99'] <= 50, r['latency_ms']['p99'], 50)} |",
        f"| new items embedded and queryable, fp32 encoder, items/s | {runs([x['items_per_s'] for x in r['items_fp32']])} | | |",
        f"| same, int8 encoder (`RECSTREAM_ENCODER_INT8=1`), items/s | {runs([x['items_per_s'] for x in r['items_int8']])} "
        f"| ≥ 400 | {met(r['items_per_s'] >= 400, r['items_per_s'], 400)} |",
        f"| prequential hit@10, fp32 → int8 encoder (`recstream evaluate --fraction {r['plan']['eval_fraction']}`) "
        f"| {q['fp32']:.4f} → {q['int8']:.4f} ({r['int8_hit_at_10_change'] * 100:+.1f}%) | within 2% | "
        f"{met(abs(r['int8_hit_at_10_change']) <= 0.02, abs(r['int8_hit_at_10_change']), 0.02)} |",
        f"| index recall@10 vs exact, {r['index']['items']:,} items, ef_search {r['index_ef_search']} | "
        f"{r['index_recall_at_10']:.4f} | ≥ 0.98 | {met(r['index_recall_at_10'] >= 0.98, r['index_recall_at_10'], 0.98)} |",
        f"| index queries/s, one thread, batches of 100 | {r['index_qps']:,.0f} | ≥ 5,000 | "
        f"{met(r['index_qps'] >= 5000, r['index_qps'], 5000)} |",
        f"| users table on disk after {r['state']['users']:,} users (flushed, compacted), bytes/user | "
        f"{r['bytes_per_user']:,.0f} | ≤ 2,048 | {met(r['bytes_per_user'] <= 2048, r['bytes_per_user'], 2048)} |",
        f"| worker RSS after {r['state']['users']:,} users, MB | {r['worker_rss_mb']:,.0f} | | |",
        "",
        "Index sweep (ef_search: recall@10, queries/s): "
        + "; ".join(f"{s['ef_search']}: {s['recall_at_10']:.4f}, {s['queries_per_s']:,.0f}" for s in r["index"]["sweep"])
        + f". Build: {r['index']['build_s']:.0f} s.",
    ])


@click.command("bench")
@click.option("--movielens", type=click.Path(path_type=Path), default=None)
@click.option("--generated", is_flag=True, help="Use the generated catalog and events, not MovieLens.")
@click.option("--quick", is_flag=True, help="Smaller versions of every measurement (a few minutes).")
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None, help="Write all figures here.")
@click.option("--write", "write_to", type=click.Path(path_type=Path), default=None, help="Update this Markdown file.")
def bench_command(movielens: Path | None, generated: bool, quick: bool, json_out: Path | None, write_to: Path | None) -> None:
    """Measure throughput, latency, item ingestion, the index and state size on this machine."""
    settings = Settings()
    # --quick must stay under five minutes: the generated catalog embeds in seconds, MovieLens' in a minute.
    source = sources.resolve(movielens, settings.movielens, generated=generated, auto=not quick)
    with tempfile.TemporaryDirectory(prefix="recstream-bench-") as tmp:
        result = run(QUICK if quick else FULL, source, Path(tmp), lambda m: click.echo(f"… {m}", err=True))
    body = markdown(result, "recstream bench " + " ".join(sys.argv[2:]))
    publish_report(result, body, json_out, write_to, name="bench", heading="Performance: `recstream bench` (issue 5)",
                   title="Benchmarks")
