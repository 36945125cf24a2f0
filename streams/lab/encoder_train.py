"""`recstream encoder train`: fine-tune the item encoder on pairs of items people consumed close together.

The data is MovieLens (`--movielens DIR`, cut at `--fraction` of the stream or at `--until`) or the
live topics (`--from-topics`: the items topic for texts, the events topic for behaviour, only
events before `--until`). The model is written to `--out DIR/<version>`; point a worker's
RECSTREAM_ENCODER_PATH at that folder to use it (docs/encoder.md).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import click
from tqdm import tqdm

from models.encoder import bundled_model_path, encoder_info
from models.encoder_training import (
    PairOptions,
    TrainOptions,
    blend_with_base,
    co_consumed,
    describe,
    fine_tune,
    match_spread,
    save_tuned,
    select_pairs,
)
from schemas.decode import InvalidMessage, decode_event, decode_item
from schemas.records import Event, Item
from streams.lab import sources
from streams.settings import Settings


def parse_until(value: str | None) -> int | None:
    """Milliseconds since the epoch, or an ISO date/time (UTC unless it says otherwise)."""
    if value is None:
        return None
    if value.isdigit():
        return int(value)
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter("use milliseconds since the epoch or an ISO date, e.g. 2018-06-01", param_hint="--until")
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return int(when.timestamp() * 1000)


def from_topics(settings: Settings) -> tuple[list[Item], list[Event]]:
    """The catalog (latest version of each item) and every readable event, in timestamp order."""
    from streams.kafka.watching import scan_to_end

    latest: dict[str, Item] = {}
    for msg in scan_to_end(settings, settings.topic_items, timeout=300):
        try:
            item = decode_item(msg.value())
        except InvalidMessage:
            continue
        if item.op == "delete":
            latest.pop(item.item_id, None)
        else:
            latest[item.item_id] = item
    events: list[Event] = []
    for msg in scan_to_end(settings, settings.topic_events, timeout=600):
        try:
            events.append(decode_event(msg.value()))
        except InvalidMessage:
            continue
    events.sort(key=lambda e: e.ts)  # stable: one user's events keep their log order
    return list(latest.values()), events


@click.group("encoder")
def encoder_command() -> None:
    """Fine-tune the item encoder on behaviour (docs/encoder.md)."""


@encoder_command.command("train")
@click.option("--movielens", type=click.Path(path_type=Path), default=None,
              help="Train on a MovieLens folder (default: RECSTREAM_MOVIELENS, then the shared copy).")
@click.option("--from-topics", "use_topics", is_flag=True, help="Train on the items and events topics of RECSTREAM_KAFKA_BOOTSTRAP.")
@click.option("--until", default=None, help="Only events before this time (ms since the epoch or an ISO date).")
@click.option("--fraction", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="MovieLens: only the first FRACTION of the stream (0.3 for the evaluation's protocol).")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Parent folder; the model goes to OUT/<version>.")
@click.option("--base", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Model folder to start from (default: RECSTREAM_ENCODER_PATH, then the bundled MiniLM).")
@click.option("--window", default=PairOptions.window, show_default=True,
              help="An item pairs with the user's previous N positive items.")
@click.option("--min-count", default=PairOptions.min_count, show_default=True,
              help="Pairs consumed together by fewer users are dropped.")
@click.option("--max-per-item", default=PairOptions.max_per_item, show_default=True,
              help="At most this many pairs per item.")
@click.option("--max-pairs", default=PairOptions.max_pairs, show_default=True, help="At most this many pairs.")
@click.option("--epochs", default=TrainOptions.epochs, show_default=True)
@click.option("--batch-size", default=TrainOptions.batch_size, show_default=True,
              help="Pairs per step; the other pairs of a batch are each pair's negatives.")
@click.option("--learning-rate", default=TrainOptions.learning_rate, show_default=True)
@click.option("--anchor", default=TrainOptions.anchor, show_default=True,
              help="Weight of a term keeping each text's vector near the base model's (0: none).")
@click.option("--base-weight", type=click.FloatRange(0, 1, max_open=True), default=0.0, show_default=True,
              help="Blend the trained weights back toward the base model's by this share (0: none).")
@click.option("--match-spread/--no-match-spread", "match_spread_", default=True, show_default=True,
              help="Give the tuned space the base model's mean cosine over the catalog (a fixed shift appended to the model).")
@sources.tie_order_options
def train_command(movielens: Path | None, use_topics: bool, until: str | None, fraction: float | None, out: Path,
                  base: Path | None, window: int, min_count: int, max_per_item: int, max_pairs: int, epochs: int,
                  batch_size: int, learning_rate: float, anchor: float, base_weight: float, match_spread_: bool,
                  tie_order: str, seed: int) -> None:
    """Fine-tune the encoder on co-consumed item pairs; prints the new model's folder.

    `--seed` orders MovieLens's tied events and seeds the training's shuffling and initial state."""
    settings = Settings()
    cutoff = parse_until(until)
    if use_topics:
        if movielens is not None or fraction is not None:
            raise click.UsageError("--from-topics reads the topics: drop --movielens and --fraction")
        items, events = from_topics(settings)
        source_name = f"topics {settings.topic_items}, {settings.topic_events} at {settings.kafka_bootstrap}"
    else:
        source = sources.resolve(movielens, settings.movielens)
        if source.movielens is None:
            raise click.ClickException("no MovieLens folder: pass --movielens DIR or --from-topics")
        items, events = source.items(), source.events(None, tie_order, seed)
        source_name = str(source.movielens)
        if fraction is not None:
            cut = events[min(len(events) - 1, int(len(events) * fraction))].ts
            cutoff = cut if cutoff is None else min(cutoff, cut)
    base_path = base or settings.encoder_path
    texts = {item.item_id: item.text() for item in items if item.op == "upsert"}
    pair_options = PairOptions(window, min_count, max_per_item, max_pairs)
    counts = co_consumed(events, window, cutoff)
    pairs = select_pairs(counts, texts, pair_options)
    used = sum(1 for e in events if cutoff is None or e.ts < cutoff)
    click.echo(f"{len(pairs):,} pairs (of {len(counts):,} co-consumed) from {used:,} events before "
               f"{cutoff if cutoff is not None else 'the end'} in {source_name}", err=True)
    train_options = TrainOptions(epochs, batch_size, learning_rate, anchor=anchor, seed=seed,
                                 threads=max(2, settings.encoder_threads))
    bar = tqdm(desc="fine-tuning", unit="step", total=None)

    def on_step(step: int, steps: int, loss: float) -> None:
        bar.total = steps
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}", refresh=False)

    start_from = base_path or bundled_model_path()
    model, result = fine_tune(start_from, pairs, texts, train_options, on_step)
    bar.close()
    model = blend_with_base(model, start_from, base_weight)
    spread: dict[str, float] = {}
    if match_spread_:
        model, spread = match_spread(model, start_from, list(texts.values()), seed=seed)
        click.echo(f"mean cosine over the catalog: base {spread['base_mean_cosine']}, tuned {spread['tuned_mean_cosine']}, "
                   f"after the shift {spread['matched_mean_cosine']}", err=True)
    info = {"trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "data": source_name,
            "cutoff_ts": cutoff, "events_used": used, "base_weight": base_weight,
            "match_spread": match_spread_, **spread,
            **describe(result, pair_options, train_options)}
    folder = save_tuned(model, out, encoder_info(base_path)["base_model"], info)
    click.echo(f"trained in {result.seconds:.0f} s, {result.steps} steps, final loss {info['final_loss']}", err=True)
    click.echo(str(folder))

