"""Where catalogs and event streams come from: MovieLens when given or at hand, else the generated set."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from models.datasets import movielens, synthetic
from schemas.records import Event, Item

# A checkout next to the shared datasets folder (as on the project's machines) uses it by default.
SHARED_MOVIELENS = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "ml-latest-small"


@dataclass(frozen=True)
class Source:
    name: str
    movielens: Path | None

    def items(self) -> list[Item]:
        return movielens.load_items(self.movielens) if self.movielens else synthetic.generate_catalog()

    def events(self, limit: int | None = None) -> list[Event]:
        if self.movielens:
            return movielens.load_events(self.movielens, limit=limit)
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
