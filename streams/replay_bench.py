"""`recstream bench-replay`: one worker on this machine, replaying MovieLens, measured from outside.

Throughput runs replay a slice as fast as the producer can (a backlog); latency runs offer a fixed
rate below capacity, so the figure is processing latency, not queueing. Consecutive slices of the
stream are used, so no run replays events the worker already applied.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import click

from streams.markdown_sections import write_section
from streams.measure import ReplayReport, measured_replay
from streams.settings import Settings
from streams.sources import Source
from streams.stack import LocalStack



def machine() -> str:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{platform.machine()}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, Python {platform.python_version()}, broker: embedded Tansu on the same machine"


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} (min {min(values):.1f}, max {max(values):.1f})"


def run(settings: Settings, source: Source, runs: int, slice_size: int, latency_events: int, rate: float) -> dict[str, Any]:
    catalog = source.items()
    needed = runs * (slice_size + latency_events)
    events = source.events(needed)
    if len(events) < needed:
        raise click.ClickException(f"{source.name} has {len(events)} events; the benchmark needs {needed}")
    with tempfile.TemporaryDirectory(prefix="recstream-bench-") as tmp, LocalStack(Path(tmp)) as stack:
        local = settings.model_copy(update={"kafka_bootstrap": stack.bootstrap})
        publisher, _worker = stack.start_worker_with_catalog(catalog, timeout=900)
        throughput: list[ReplayReport] = []
        latency: list[ReplayReport] = []
        pos = 0
        for _ in range(runs):
            throughput.append(measured_replay(local, publisher, events[pos : pos + slice_size], None))
            pos += slice_size
            click.echo(json.dumps(throughput[-1].as_dict()), err=True)
        for _ in range(runs):
            latency.append(measured_replay(local, publisher, events[pos : pos + latency_events], rate))
            pos += latency_events
            click.echo(json.dumps(latency[-1].as_dict()), err=True)
    return {
        "machine": machine(),
        "source": source.name,
        "catalog_items": len(catalog),
        "throughput_runs": [r.as_dict() for r in throughput],
        "latency_runs": [r.as_dict() for r in latency],
        "events_per_s_median": statistics.median(r.events_per_s for r in throughput),
        "latency_ms_p50_median": statistics.median(r.latency_ms_p50 for r in latency),
        "latency_ms_p99_median": statistics.median(r.latency_ms_p99 for r in latency),
    }


def markdown(result: dict[str, Any], command: str) -> str:
    t, lat = result["throughput_runs"], result["latency_runs"]
    return "\n".join([
        f"Command: `{command}`  ",
        f"Machine: {result['machine']}  ",
        f"Data: {result['source']}, {result['catalog_items']} catalog items, one worker, 4 partitions.",
        "",
        "| measure | median (min, max) | runs |",
        "|---|---|---|",
        f"| throughput, backlog of {t[0]['events']} events, events/s | {_spread([r['events_per_s'] for r in t])} | {len(t)} |",
        f"| latency p50 at {lat[0]['rate_offered']:.0f} events/s, ms | {_spread([r['latency_ms_p50'] for r in lat])} | {len(lat)} |",
        f"| latency p95 at {lat[0]['rate_offered']:.0f} events/s, ms | {_spread([r['latency_ms_p95'] for r in lat])} | {len(lat)} |",
        f"| latency p99 at {lat[0]['rate_offered']:.0f} events/s, ms | {_spread([r['latency_ms_p99'] for r in lat])} | {len(lat)} |",
        "",
        "Latency: event handed to the producer until its recommendation list's Kafka timestamp, for events",
        "that triggered a list (lists are coalesced per user and batch).",
    ])


@click.command("bench-replay")
@click.option("--movielens", type=click.Path(path_type=Path), default=None)
@click.option("--generated", is_flag=True)
@click.option("--runs", default=3, show_default=True)
@click.option("--slice", "slice_size", default=20_000, show_default=True, help="Events per throughput run.")
@click.option("--latency-events", default=5_000, show_default=True, help="Events per latency run.")
@click.option("--rate", default=500.0, show_default=True, help="Offered rate of the latency runs, events/s.")
@click.option("--write", "write_to", type=click.Path(path_type=Path), default=None, help="Update this Markdown file.")
def bench_replay(movielens: Path | None, generated: bool, runs: int, slice_size: int, latency_events: int, rate: float,
                 write_to: Path | None) -> None:
    """Measure one worker's events/s and event-to-recommendation latency while replaying MovieLens."""
    from streams import sources

    settings = Settings()
    source = sources.resolve(movielens, settings.movielens, generated=generated)
    result = run(settings, source, runs, slice_size, latency_events, rate)
    click.echo(json.dumps(result, indent=2))
    if write_to is not None:
        write_section(write_to, "bench-replay", markdown(result, "recstream bench-replay " + " ".join(sys.argv[2:])),
                      heading="Replay: one worker, events/s and latency (issue 2)", title="Benchmarks")
