"""`recstream`: run the broker and workers, publish catalogs and events, read recommendations, demo.

Every failure a user can cause or meet prints one line saying what was wrong and what to do,
and exits non-zero; tracebacks are for bugs only.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import click
from confluent_kafka import KafkaException
from pydantic import ValidationError
from tqdm import tqdm

from models.datasets import DatasetError
from models.variants import VariantsError
from streams.client.display import format_list
from streams.lab.experiments_report import ReportError, experiments_command
from streams.kafka.producing import DeliveryError, Publisher, make_producer, paced, publish_event, publish_items
from streams.lab import sources
from streams.lab.bench.command import bench_command
from streams.lab.bench.profile import bench_profile
from streams.lab.broker import BrokerError, EmbeddedBroker
from streams.lab.children import sigterm_stops
from streams.lab.encoder_train import encoder_command
from streams.lab.evaluate import evaluate_command
from streams.lab.reliability.report import reliability_command
from streams.lab.stack import StackError
from streams.settings import Settings

EXPECTED = (DatasetError, BrokerError, DeliveryError, StackError, TimeoutError, KafkaException, OSError, LookupError,
            VariantsError, ReportError)


def _settings() -> Settings:
    return Settings()


def _bar(total: int, desc: str) -> tqdm:
    return tqdm(total=total, desc=desc, unit="msg", unit_scale=True, file=sys.stderr, disable=None)


def _source(movielens: Path | None, generated: bool, settings: Settings) -> sources.Source:
    return sources.resolve(movielens, settings.movielens, generated=generated)


movielens_option = click.option(
    "--movielens", type=click.Path(path_type=Path), default=None,
    help="MovieLens folder (ml-latest-small format). Default: RECSTREAM_MOVIELENS, then ../shared/datasets/"
    "ml-latest-small if present, else the generated demo set.",
)
generated_option = click.option("--generated", is_flag=True, help="Use the small generated catalog and event stream.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """recstream: real-time recommendations from Kafka events.

    Configuration comes from RECSTREAM_* environment variables (see docs/operations.md).
    """


@cli.command()
@click.option("--port", default=9092, show_default=True, help="Port to listen on (127.0.0.1).")
def broker(port: int) -> None:
    """Run the embedded Kafka-compatible broker (Tansu, memory only; for development, not production)."""
    with sigterm_stops(), EmbeddedBroker(port) as b:
        click.echo(f"embedded broker listening on {b.bootstrap} (memory storage: data is lost on exit). "
                   "Ctrl-C or SIGTERM stops it.")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            click.echo("stopping broker")


@cli.command()
def worker() -> None:
    """Run a recstream worker (Faust): consumes events and items, publishes recommendations."""
    from streams.worker.main import run_worker

    run_worker(_settings())


@cli.group()
def topics() -> None:
    """Manage recstream's Kafka topics."""


@topics.command("create")
def topics_create() -> None:
    """Create any missing recstream topics (idempotent)."""
    from streams.kafka.topics import ensure_topics, topic_specs
    from streams.kafka.topics import wait_for_kafka

    settings = _settings()
    created = ensure_topics(wait_for_kafka(settings, timeout=30), topic_specs(settings))
    click.echo(f"created: {', '.join(created)}" if created else "all topics already exist")


@cli.group()
def items() -> None:
    """Publish catalog items."""


@items.command("load")
@movielens_option
@generated_option
def items_load(movielens: Path | None, generated: bool) -> None:
    """Publish a catalog to the items topic (key = item_id)."""
    settings = _settings()
    source = _source(movielens, generated, settings)
    catalog = source.items()
    publisher = Publisher(make_producer(settings))
    with _bar(len(catalog), f"items from {source.name}") as bar:
        for chunk_start in range(0, len(catalog), 500):
            chunk = catalog[chunk_start : chunk_start + 500]
            publish_items(publisher, settings.topic_items, chunk)
            bar.update(len(chunk))
        publisher.flush()
    click.echo(f"published {len(catalog)} items to {settings.topic_items}")


@cli.command()
@movielens_option
@generated_option
@click.option("--rate", type=float, default=None, help="Events per second (default: as fast as possible).")
@click.option("--limit", type=int, default=None, help="Only the first N events (timestamp order).")
@click.option("--measure", is_flag=True, help="Wait for the recommendations and report events/s and latency (JSON).")
@sources.tie_order_options
def replay(
    movielens: Path | None, generated: bool, rate: float | None, limit: int | None, measure: bool, tie_order: str,
    seed: int,
) -> None:
    """Publish ratings as events in timestamp order (>=4 purchase, 3-3.5 click, <3 browse).

    The order is the one `recstream evaluate` judges with the same --tie-order and --seed.
    """
    settings = _settings()
    source = _source(movielens, generated, settings)
    events = source.events(limit, tie_order, seed)
    publisher = Publisher(make_producer(settings))
    if measure:
        from streams.lab.measure import measured_replay

        report = measured_replay(settings, publisher, events, rate)
        click.echo(json.dumps(report.as_dict()))
        return
    with _bar(len(events), f"events from {source.name}") as bar:
        for event in paced(events, rate):
            publish_event(publisher, settings.topic_events, event)
            bar.update()
        publisher.flush()
    click.echo(f"published {len(events)} events to {settings.topic_events}")


@cli.command()
@click.argument("user_id")
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON value.")
@click.option("--timeout", default=15.0, show_default=True, help="Seconds to spend reading the topic.")
def recs(user_id: str, as_json: bool, timeout: float) -> None:
    """Print USER_ID's latest recommendations from the recommendations topic."""
    from streams.kafka.watching import latest_for_user

    settings = _settings()
    value = latest_for_user(settings, user_id, timeout=timeout)
    if value is None:
        raise click.ClickException(
            f"no recommendations for user {user_id!r} on {settings.topic_recommendations}: "
            "is a worker running, and has this user produced events?"
        )
    click.echo(json.dumps(value) if as_json else format_list(value))


@cli.group()
def dataset() -> None:
    """Fetch datasets."""


@dataset.command("download")
@click.option("--dest", type=click.Path(path_type=Path), default=Path(".recstream/datasets"), show_default=True)
def dataset_download(dest: Path) -> None:
    """Download MovieLens ml-latest-small (needs internet access)."""
    from models.datasets.movielens import download

    path = download(dest)
    click.echo(f"MovieLens is in {path}; use --movielens {path} or RECSTREAM_MOVIELENS={path}")


@cli.command()
@movielens_option
@generated_option
@click.option("--limit", type=int, default=20_000, show_default=True, help="Events to replay from MovieLens.")
@click.option("--keep-running", is_flag=True, help="Leave broker and worker up (metrics, `recstream recs`) until Ctrl-C.")
def demo(movielens: Path | None, generated: bool, limit: int, keep_running: bool) -> None:
    """Start a broker and a worker, load a catalog, replay events, show live recommendations."""
    from streams.lab.demo import run_demo

    settings = _settings()
    with sigterm_stops():  # a SIGTERM unwinds like Ctrl-C: the demo's broker and worker are stopped
        run_demo(settings, _source(movielens, generated, settings), limit, keep_running)


@cli.group()
def state() -> None:
    """Inspect the users' state."""


@state.command("export")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="JSON Lines file to write.")
@click.option("--timeout", default=60.0, show_default=True, help="Seconds allowed to read the changelog to its end.")
def state_export(out: Path, timeout: float) -> None:
    """Write every user's state (JSON Lines) from the users changelog; safe while workers run."""
    from streams.lab.state_export import changelog_topic, export_to_file

    settings = _settings()
    n = export_to_file(settings, out, timeout)
    click.echo(f"exported {n} users from {changelog_topic(settings)} to {out}")


@cli.group()
def users() -> None:
    """Manage users."""


@users.command("erase")
@click.argument("user_id")
@click.option("--wait", "wait_s", default=10.0, show_default=True,
              help="Seconds to wait for the worker's confirmation (0: send and return).")
def users_erase(user_id: str, wait_s: float) -> None:
    """Delete everything recstream keeps about USER_ID (state, list); see "Erasing a user" in docs/architecture.md."""
    from streams.lab.erasure import erase_user

    done = erase_user(_settings(), user_id, wait_s)
    if done.confirmed_after_s is None:
        click.echo(f"sent erase event {done.event_id} for user {user_id!r}")
    else:
        click.echo(f"erased user {user_id!r}: state and list deleted {done.confirmed_after_s:.2f}s after the erase event reached Kafka")


cli.add_command(bench_command)
cli.add_command(bench_profile)
cli.add_command(evaluate_command)
cli.add_command(reliability_command)
cli.add_command(experiments_command)
cli.add_command(encoder_command)


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ValidationError as exc:
        problems = "; ".join(
            f"RECSTREAM_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        click.echo(f"error: invalid setting: {problems} (see the configuration table in docs/operations.md)", err=True)
        sys.exit(1)
    except EXPECTED as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except Exception as exc:  # a bug or a case we did not foresee: still one line, and how to see more
        if os.environ.get("RECSTREAM_TRACEBACK"):
            raise
        message = " ".join(str(exc).split())
        click.echo(f"error: unexpected {type(exc).__name__}: {message} (run again with RECSTREAM_TRACEBACK=1 for "
                   "the traceback, and please report it)", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
