"""`recstream bench-profile`: where a worker's time goes while it eats a backlog (py-spy, sampled).

Prints the functions with the largest share of samples, inclusive and self, so BENCHMARKS.md can
show measured profile output next to any missed target.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import click

from streams.kafka.producing import Publisher, make_producer, publish_events, publish_items
from streams.lab import sources
from streams.lab.bench.stream_bench import interleaved, wide_stream
from streams.lab.children import die_with_parent
from streams.lab.markdown_sections import write_section
from streams.lab.reliability.checks import isolated_env
from streams.lab.stack import LocalStack
from streams.settings import Settings


def collapse(raw: str, top: int) -> tuple[list[tuple[float, str]], list[tuple[float, str]]]:
    """(inclusive, self) shares of samples per function from py-spy's collapsed-stack output."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        if not line.strip():
            continue
        stack, n_text = line.rsplit(" ", 1)
        n = int(n_text)
        frames = stack.split(";")
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            incl[frame] += n
    share = lambda c: [(100.0 * n / total, f) for f, n in c.most_common(top)]  # noqa: E731
    return share(incl), share(own)


def profile_backlog(source: sources.Source, events: int, seconds: int, root: Path) -> tuple[str, float]:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        raise click.ClickException("py-spy is not installed; run `make install` (it is a test dependency)")
    with LocalStack(root, extra_env=isolated_env()) as stack:
        settings = stack.settings()
        publisher = Publisher(make_producer(settings))
        publish_items(publisher, settings.topic_items, source.items())
        # The wide backlog of `recstream bench`: consecutive events of different users, one list per event.
        backlog = interleaved(wide_stream(source.events(min(events, 100_000)), events, "p-"))
        publish_events(publisher, settings.topic_events, backlog)
        publisher.flush(600)
        worker = stack.add_worker("profiled")
        while not worker.is_ready() or not worker.metric("recstream_events_total"):
            time.sleep(0.5)
        started, before = time.monotonic(), worker.metric("recstream_events_total") or 0.0
        out = root / "profile.txt"
        assert worker.proc is not None
        subprocess.run([spy, "record", "--format", "raw", "--duration", str(seconds), "--rate", "200",
                        "--output", str(out), "--pid", str(worker.proc.pid)], check=True, capture_output=True,
                       preexec_fn=die_with_parent())
        rate = ((worker.metric("recstream_events_total") or 0.0) - before) / (time.monotonic() - started)
        return out.read_text(), rate


@click.command("bench-profile")
@click.option("--movielens", type=click.Path(path_type=Path), default=None)
@click.option("--generated", is_flag=True)
@click.option("--events", default=60_000, show_default=True, help="Backlog size.")
@click.option("--seconds", default=25, show_default=True, help="How long to sample.")
@click.option("--top", default=30, show_default=True)
@click.option("--write", "write_to", type=click.Path(path_type=Path), default=None, help="Update this Markdown file.")
def bench_profile(movielens: Path | None, generated: bool, events: int, seconds: int, top: int, write_to: Path | None) -> None:
    """Sample a worker with py-spy while it applies a backlog; print where the time goes."""
    settings = Settings()
    source = sources.resolve(movielens, settings.movielens, generated=generated)
    with tempfile.TemporaryDirectory(prefix="recstream-profile-") as tmp:
        raw, rate = profile_backlog(source, events, seconds, Path(tmp))
    incl, own = collapse(raw, top)
    body = "\n".join([
        f"Command: `recstream bench-profile {' '.join(sys.argv[2:])}`  ",
        f"Worker applying a wide backlog (consecutive events of different users) from {source.name} at {rate:,.0f} events/s while sampled (py-spy, all threads; "
        "the share of samples in which a function was on the stack, then at the top of it).",
        "", "```", "inclusive:", *[f"{s:5.1f}%  {f}" for s, f in incl], "", "self:", *[f"{s:5.1f}%  {f}" for s, f in own], "```",
    ])
    click.echo(body)
    if write_to is not None:
        write_section(write_to, "bench-profile", body, heading="Where the time goes: `recstream bench-profile`",
                      title="Benchmarks")
