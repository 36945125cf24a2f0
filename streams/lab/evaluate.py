"""`recstream evaluate`: prequential accuracy of recstream and the classic baselines on MovieLens.

The protocol lives in models.evaluation (pure, in-process); this module loads the data, builds
the item index with the real encoder (vectors cached on disk), runs every model, and writes the
JSON, the table and the plot. `--through-kafka` replays the same events through a real broker and
worker and scores the lists the worker actually published.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import click
import numpy as np
from tqdm import tqdm

from models.catalog import Catalog
from models.encoder import CachedEncoder, SentenceEncoder
from models.evaluation.baselines import AllTimePopularity, CoOccurrence, ContentOnly, RandomBaseline, RecentPopularityBaseline
from models.evaluation.prequential import Model, Report, evaluate, summary
from models.evaluation.recstream_model import RecstreamModel
from models.index import ItemIndex
from models.params import CoreParams
from schemas.records import Event, Item
from streams.lab import sources
from streams.lab.markdown_sections import write_section
from streams.settings import Settings

JSON_KEYS = ("hit@{k}", "ndcg@{k}", "mrr", "new_item_hit@{k}", "coverage")


def _bar(total: int, desc: str, unit: str = "ev") -> tqdm:
    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, file=sys.stderr, disable=None, mininterval=1.0)


def _progress(desc: str, total: int) -> Callable[[Iterable[Event]], Iterable[Event]]:
    def wrap(it: Iterable[Event]) -> Iterable[Event]:
        return tqdm(it, total=total, desc=desc, unit="ev", unit_scale=True, file=sys.stderr, disable=None, mininterval=1.0)

    return wrap


def build_index(items: Sequence[Item], settings: Settings) -> tuple[ItemIndex, CachedEncoder]:
    """The item index the worker would build, from the real encoder (vectors cached on disk)."""
    encoder = CachedEncoder(
        SentenceEncoder(threads=max(settings.encoder_threads, 2), int8=settings.encoder_int8),
        settings.data_dir.parent / "cache" / "embeddings",
        progress=lambda n: _bar(n, "embedding items", "item"),
    )
    index = ItemIndex(encoder.dim, capacity=max(16_384, 2 * len(items)))
    Catalog(index, encoder).ingest(items)
    return index, encoder


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """`name=value` pairs into typed CoreParams fields, with a clear error for a wrong name."""
    fields = {f.name: f for f in dataclasses.fields(CoreParams)}
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or name not in fields:
            raise click.BadParameter(f"{pair!r}: expected NAME=VALUE with NAME one of {', '.join(sorted(fields))}")
        kind = type(getattr(CoreParams(), name))
        try:
            out[name] = kind(raw)
        except ValueError as exc:
            raise click.BadParameter(f"{pair!r}: {exc}") from exc
    return out


def models_for(index: ItemIndex, encoder: CachedEncoder, params: CoreParams, baselines: bool) -> list[Model]:
    models: list[Model] = [RecstreamModel(index, encoder, params)]
    if baselines:
        ids = list(index.item_ids())
        vectors = index.vectors(ids)
        models += [
            RandomBaseline(ids),
            AllTimePopularity(ids),
            RecentPopularityBaseline(2_000),
            CoOccurrence(ids, window=50),
            ContentOnly(ids, vectors, ema=0.3),
        ]
    return models


def run_models(models: Sequence[Model], events: Sequence[Event], index: ItemIndex, k: int, jobs: int = 1) -> list[Report]:
    """Every model over the same events; with jobs > 1 the models run in forked worker processes."""

    def similarity(items: list[str]) -> float | None:
        vecs = index.vectors(items)
        sims = vecs @ vecs.T
        n = len(items)
        return float((sims.sum() - np.trace(sims)) / (n * (n - 1)))

    def run(i: int) -> Report:
        m = models[i]
        return evaluate(m, events, k, catalog_size=len(index), similarity=similarity, progress=_progress(m.name, len(events)))

    if jobs <= 1 or len(models) == 1:
        return [run(i) for i in range(len(models))]
    # fork: children inherit the index and the models without pickling them; only Reports come back.
    global _RUN
    _RUN = run
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(min(jobs, len(models))) as pool:
        return pool.map(_run_forked, range(len(models)), chunksize=1)


_RUN: Callable[[int], Report] | None = None


def _run_forked(i: int) -> Report:
    assert _RUN is not None
    return _RUN(i)


def result_json(reports: Sequence[Report], k: int, meta: dict[str, Any]) -> dict[str, Any]:
    ours, *others = reports
    out: dict[str, Any] = {**meta, "k": k, "recstream": summary(ours), "baselines": {r.name: summary(r) for r in others}}
    hit = f"hit@{k}"
    if others:
        best = max(others, key=lambda r: r.metrics[hit])
        out["best_baseline"] = best.name
        out["ratio_to_best_baseline"] = round(ours.metrics[hit] / best.metrics[hit], 4) if best.metrics[hit] else None
    return out


def table(reports: Sequence[Report], k: int) -> str:
    cols = [f"hit@{k}", f"ndcg@{k}", "mrr", f"new_item_hit@{k}", f"cold_user_hit@{k}", "coverage",
            "intra_list_diversity", "ms_per_event"]
    lines = ["| recommender | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for r in reports:
        vals = [r.metrics[c] for c in cols]
        lines.append(f"| {r.name} | " + " | ".join(f"{v:.4f}" if np.isfinite(v) else "n/a" for v in vals) + " |")
    return "\n".join(lines)


def markdown(result: dict[str, Any], reports: Sequence[Report], k: int, command: str) -> str:
    lines = [
        f"Command: `{command}`  ",
        f"Data: {result['dataset']}: {result['events']:,} events, {result['items']:,} items; "
        f"{int(reports[0].metrics['warm_events']):,} warm events scored, "
        f"{int(reports[0].metrics['new_item_events']):,} of them new-item events.",
        "",
        table(reports, k),
    ]
    if "ratio_to_best_baseline" in result:
        lines += ["", f"recstream hit@{k} / best baseline ({result['best_baseline']}): **{result['ratio_to_best_baseline']}**"]
    if "through_kafka" in result:
        tk = result["through_kafka"]
        lines += ["", f"Through Kafka (one worker, one event per batch): hit@{k} {tk[f'hit@{k}']:.4f} from "
                      f"{tk['lists_received']:,} published lists vs {tk[f'in_process_hit@{k}']:.4f} in-process: "
                      f"difference {tk['difference']:+.4f}, tolerance ±{tk['tolerance']}, "
                      f"{'agrees' if tk['agrees'] else 'DOES NOT AGREE'} ({tk['seconds']:.0f} s)."]
    return "\n".join(lines)


def plot(reports: Sequence[Report], k: int, path: Path, window: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 5), dpi=110)
    for r in reports:
        series = r.window_hit_rate(window)
        ax.plot(np.arange(len(series)) + window, series, label=r.name, linewidth=2.2 if r.name == "recstream" else 1.2)
    ax.set_xlabel("warm events (stream order)")
    ax.set_ylabel(f"hit@{k}, sliding window of {window:,} events")
    ax.set_title("Prequential hit rate over the stream")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


@click.command("evaluate")
@click.option("--movielens", type=click.Path(path_type=Path), default=None,
              help="MovieLens folder (ml-latest-small format). Default: RECSTREAM_MOVIELENS, then the shared copy.")
@click.option("--k", "k", default=10, show_default=True, help="List length judged.")
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None, help="Write the metrics here.")
@click.option("--plot", "plot_out", type=click.Path(path_type=Path), default=None, help="Write a hit@k-over-time PNG.")
@click.option("--window", default=5_000, show_default=True, help="Sliding window of the plot, in warm events.")
@click.option("--limit", type=int, default=None, help="Only the first N events.")
@click.option("--fraction", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="Only the first FRACTION of the stream (tune on 0.3, report on all).")
@click.option("--set", "overrides", multiple=True, metavar="NAME=VALUE", help="Override a core parameter (tuning).")
@click.option("--no-baselines", is_flag=True, help="Evaluate recstream only.")
@click.option("--through-kafka", is_flag=True,
              help="Also replay through a real broker and worker and score the published lists (use --limit).")
@click.option("--tolerance", default=0.02, show_default=True, help="Allowed |hit@k| difference for --through-kafka.")
@click.option("--write", "write_to", type=click.Path(path_type=Path), default=None,
              help="Paste the command line and the table into this Markdown file (a section per kind of run).")
@click.option("--jobs", default=min(2, os.cpu_count() or 1), show_default=True,
              help="Models evaluated in parallel processes (each on one core).")
def evaluate_command(
    movielens: Path | None, k: int, json_out: Path | None, plot_out: Path | None, window: int, limit: int | None,
    fraction: float | None, overrides: tuple[str, ...], no_baselines: bool, through_kafka: bool, tolerance: float,
    jobs: int, write_to: Path | None,
) -> None:
    """Prequential (test-then-learn) evaluation of recstream against the classic baselines."""
    settings = Settings()
    if through_kafka and overrides:
        raise click.UsageError("--set cannot be combined with --through-kafka: the worker runs the default parameters")
    source = sources.resolve(movielens, settings.movielens)
    if source.movielens is None:
        raise click.ClickException(
            "no MovieLens folder: pass --movielens DIR, set RECSTREAM_MOVIELENS, or run `recstream dataset download`"
        )
    params = dataclasses.replace(CoreParams(), top_k=k, **parse_overrides(overrides))
    items = source.items()
    events = source.events(limit)
    if fraction is not None:
        events = events[: max(1, int(len(events) * fraction))]
    index, encoder = build_index(items, settings)
    try:
        models = models_for(index, encoder, params, not no_baselines)
    except ValueError as exc:  # a catalog too large for a dense baseline
        raise click.ClickException(f"{exc}; or pass --no-baselines") from exc
    reports = run_models(models, events, index, k, jobs)
    meta = {"dataset": str(source.movielens), "events": len(events), "items": len(index),
            "params": dataclasses.asdict(params)}
    result = result_json(reports, k, meta)
    if through_kafka:
        from streams.lab.evaluate_kafka import compare_through_kafka

        result["through_kafka"] = compare_through_kafka(settings, items, events, reports[0], k, tolerance)
    click.echo(table(reports, k))
    if "ratio_to_best_baseline" in result:
        click.echo(f"\nrecstream hit@{k} / best baseline ({result['best_baseline']}): {result['ratio_to_best_baseline']}")
    if through_kafka:
        click.echo(f"through Kafka: {json.dumps(result['through_kafka'])}")
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=2) + "\n")
        click.echo(f"metrics written to {json_out}")
    if plot_out:
        plot(reports, k, plot_out, window)
        click.echo(f"plot written to {plot_out}")
    if write_to:
        name = "evaluate" + (f"-first-{fraction:g}" if fraction else "") + (f"-limit-{limit}" if limit else "")
        body = markdown(result, reports, k, "recstream evaluate " + " ".join(sys.argv[2:]))
        write_section(write_to, name, body, heading=f"Run: {name}", title="Evaluation")
        click.echo(f"table written to {write_to} (section {name})")
    if through_kafka and not result["through_kafka"]["agrees"]:
        raise click.ClickException(
            f"through Kafka hit@{k} differs from in-process by more than {tolerance}: {result['through_kafka']}"
        )
