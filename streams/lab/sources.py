"""Where catalogs and event streams come from: MovieLens when given or at hand, else the generated set."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import click

from models.datasets import movielens, synthetic
from schemas.records import Event, Item

F = TypeVar("F", bound=Callable[..., object])


def tie_order_options(command: F) -> F:
    """`--tie-order` and `--seed`, shared by `evaluate` and `replay` so both can replay one order."""
    command = click.option(
        "--seed", default=movielens.DEFAULT_SEED, show_default=True,
        help="Seed of the shuffled tie order (the same seed gives the same order in evaluate and replay).",
    )(command)
    return click.option(
        "--tie-order", type=click.Choice(movielens.TIE_ORDERS), default="shuffle", show_default=True,
        help="Order of one user's ratings that share a timestamp: a seeded random order, or ratings.csv's "
        "(ascending movieId).",
    )(command)

# A checkout next to the shared datasets folder (as on the project's machines) uses it by default.
SHARED_MOVIELENS = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "ml-latest-small"


@dataclass(frozen=True)
class Source:
    name: str
    movielens: Path | None

    def items(self) -> list[Item]:
        return movielens.load_items(self.movielens) if self.movielens else synthetic.generate_catalog()

    def events(
        self, limit: int | None = None, tie_order: str = "shuffle", seed: int = movielens.DEFAULT_SEED
    ) -> list[Event]:
        """MovieLens in timestamp order, a user's same-second ratings ordered by `tie_order` (see load_events)."""
        if self.movielens:
            return movielens.load_events(self.movielens, limit=limit, tie_order=tie_order, seed=seed)
        events = synthetic.generate_events(synthetic.generate_catalog())
        return events[:limit] if limit else events


def resolve(explicit: Path | None, configured: Path | None, generated: bool = False, auto: bool = True) -> Source:
    """--movielens DIR wins, then RECSTREAM_MOVIELENS, then the shared copy (when `auto`), else generated."""
    if generated:
        return Source("generated", None)
    for candidate in (explicit, configured):
        if candidate is not None:
            return Source(f"MovieLens ({candidate})", movielens.check_dir(candidate))
    if auto and (SHARED_MOVIELENS / "ratings.csv").is_file():
        return Source(f"MovieLens ({SHARED_MOVIELENS})", SHARED_MOVIELENS)
    return Source("generated", None)
