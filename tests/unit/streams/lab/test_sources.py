"""Where the lab tools find MovieLens when no folder is given: the shared copy beside the checkout."""

from pathlib import Path

from streams.lab import sources

ROOT = Path(__file__).resolve().parents[4]


def test_the_shared_movielens_copy_is_looked_for_beside_the_checkout() -> None:
    # `../shared/datasets/ml-latest-small` as the README says; moving sources.py once pointed it inside the repo.
    assert sources.SHARED_MOVIELENS == ROOT.parent / "shared" / "datasets" / "ml-latest-small"


def test_with_no_folder_given_the_shared_copy_is_used_when_present() -> None:
    chosen = sources.resolve(None, None)
    if (sources.SHARED_MOVIELENS / "ratings.csv").is_file():
        assert chosen.movielens == sources.SHARED_MOVIELENS
    else:
        assert chosen.movielens is None and chosen.name == "generated"
    assert sources.resolve(None, None, generated=True).movielens is None
