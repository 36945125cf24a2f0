"""MovieLens loaders: exact parsing of a hand-made sample, the real files if present, download."""

from __future__ import annotations

import os
import time
import zipfile
from pathlib import Path

import pytest

from models.datasets import DatasetError
from models.datasets import movielens
from models.datasets.movielens import (
    REQUIRED_FILES,
    check_dir,
    download,
    load_events,
    load_items,
    rating_to_type,
)
from schemas.records import Event, EventType, Item

MOVIES = (
    "movieId,title,genres\n"
    "1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\n"
    '11,"American President, The (1995)",Comedy|Drama|Romance\n'
    "1076,Alien (1979),Horror|Sci-Fi\n"
    "182727,A Christmas Story Live! (2017),(no genres listed)\n"
)

# Rows deliberately out of time order, with ties at t=100 (file order must survive the sort).
RATINGS = (
    "userId,movieId,rating,timestamp\n"
    "2,1076,3.5,300\n"
    "1,1,4.0,100\n"
    "1,11,2.5,200\n"
    "3,11,3.0,100\n"
    "2,1,5.0,100\n"
    "3,182727,0.5,250\n"
)


def _write(folder: Path, movies: str = MOVIES, ratings: str = RATINGS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "movies.csv").write_text(movies, encoding="utf-8")
    (folder / "ratings.csv").write_text(ratings, encoding="utf-8")
    return folder


def _real_dir() -> Path | None:
    env = os.environ.get("RECSTREAM_MOVIELENS")
    repo_root = Path(__file__).resolve().parents[4]
    candidate = Path(env) if env else repo_root / "../shared/datasets/ml-latest-small"
    return candidate.resolve() if all((candidate / n).is_file() for n in REQUIRED_FILES) else None


def _zip_dataset(tmp_path: Path) -> Path:
    source = _write(tmp_path / "src" / "ml-latest-small")
    archive = tmp_path / "served" / "ml-latest-small.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as zf:
        for name in REQUIRED_FILES:
            zf.write(source / name, f"ml-latest-small/{name}")
    return archive


# ---- check_dir ----


def test_check_dir_returns_resolved_path(tmp_path: Path) -> None:
    folder = _write(tmp_path / "ml")
    assert check_dir(str(tmp_path / "ml" / ".." / "ml")) == folder.resolve()


@pytest.mark.parametrize("missing", REQUIRED_FILES)
def test_check_dir_names_the_missing_file_and_the_fix(tmp_path: Path, missing: str) -> None:
    folder = _write(tmp_path / "ml")
    (folder / missing).unlink()
    with pytest.raises(DatasetError) as info:
        check_dir(folder)
    message = str(info.value)
    assert missing in message
    assert "--movielens DIR" in message
    assert "recstream dataset download" in message
    assert "\n" not in message


def test_loaders_check_the_folder_first(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="movies.csv"):
        load_items(tmp_path)
    with pytest.raises(DatasetError, match="movies.csv"):
        load_events(tmp_path)


# ---- items ----


def test_load_items_parses_quoted_titles_and_genres(tmp_path: Path) -> None:
    items = load_items(_write(tmp_path / "ml"))
    assert items == [
        Item(
            item_id="1",
            title="Toy Story (1995)",
            categories=["Adventure", "Animation", "Children", "Comedy", "Fantasy"],
        ),
        Item(
            item_id="11",
            title="American President, The (1995)",
            categories=["Comedy", "Drama", "Romance"],
        ),
        Item(item_id="1076", title="Alien (1979)", categories=["Horror", "Sci-Fi"]),
        Item(item_id="182727", title="A Christmas Story Live! (2017)", categories=[]),
    ]
    assert all(i.description is None and i.op == "upsert" for i in items)


# ---- rating mapping ----


@pytest.mark.parametrize(
    ("rating", "expected"),
    [
        (5.0, EventType.PURCHASE),
        (4.0, EventType.PURCHASE),
        (3.5, EventType.CLICK),
        (3.0, EventType.CLICK),
        (2.5, EventType.BROWSE),
        (0.5, EventType.BROWSE),
    ],
)
def test_rating_to_type(rating: float, expected: EventType) -> None:
    assert rating_to_type(rating) is expected


# ---- events ----


def test_load_events_exact(tmp_path: Path) -> None:
    events = load_events(_write(tmp_path / "ml"))
    assert events == [
        Event(event_id="ml-1-1-100", user_id="1", type=EventType.PURCHASE, item_id="1", ts=100_000),
        Event(event_id="ml-3-11-100", user_id="3", type=EventType.CLICK, item_id="11", ts=100_000),
        Event(event_id="ml-2-1-100", user_id="2", type=EventType.PURCHASE, item_id="1", ts=100_000),
        Event(event_id="ml-1-11-200", user_id="1", type=EventType.BROWSE, item_id="11", ts=200_000),
        Event(
            event_id="ml-3-182727-250",
            user_id="3",
            type=EventType.BROWSE,
            item_id="182727",
            ts=250_000,
        ),
        Event(
            event_id="ml-2-1076-300", user_id="2", type=EventType.CLICK, item_id="1076", ts=300_000
        ),
    ]
    assert all(e.query is None for e in events)


def test_load_events_is_deterministic(tmp_path: Path) -> None:
    folder = _write(tmp_path / "ml")
    assert load_events(folder) == load_events(folder)


def _tied_ratings() -> str:
    """User 1 rates twenty films in one second between other users' ratings of that second."""
    rows = ["userId,movieId,rating,timestamp", "7,5,4.0,100"]
    rows += [f"1,{movie},4.0,100" for movie in range(1, 21)]
    rows += ["9,5,3.0,100", "1,99,4.0,50", "1,98,4.0,150"]
    return "\n".join(rows) + "\n"


def _order(events: list[Event]) -> list[tuple[str, str | None]]:
    return [(e.user_id, e.item_id) for e in events]


def test_ties_of_one_user_are_shuffled_by_seed_and_nothing_else_moves(tmp_path: Path) -> None:
    folder = _write(tmp_path / "ml", ratings=_tied_ratings())
    filed = load_events(folder, tie_order="file")
    shuffled = load_events(folder, tie_order="shuffle", seed=0)
    assert [e.item_id for e in filed if e.user_id == "1" and e.ts == 100_000] == [str(m) for m in range(1, 21)]
    tied = [e.item_id for e in shuffled if e.user_id == "1" and e.ts == 100_000]
    assert sorted(tied, key=int) == [str(m) for m in range(1, 21)] and tied != sorted(tied, key=int)
    # Only the tied group's inside changes: the other users' events and other seconds keep their places.
    assert [i for i, e in enumerate(shuffled) if (e.user_id, e.ts) != ("1", 100_000)] == [
        i for i, e in enumerate(filed) if (e.user_id, e.ts) != ("1", 100_000)
    ]
    assert _order(shuffled)[0] == ("1", "99") and _order(shuffled)[1] == ("7", "5")
    assert _order(shuffled)[-2:] == [("9", "5"), ("1", "98")]
    assert load_events(folder, seed=0) == shuffled  # shuffle with seed 0 is the default
    assert _order(load_events(folder, seed=1)) != _order(shuffled)
    assert load_events(folder, seed=1) == load_events(folder, seed=1)


def test_an_unknown_tie_order_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="shuffle, file"):
        load_events(_write(tmp_path / "ml"), tie_order="random")


@pytest.mark.parametrize("limit", [0, 1, 3, 6, 100])
def test_load_events_limit_takes_the_earliest(tmp_path: Path, limit: int) -> None:
    folder = _write(tmp_path / "ml")
    assert load_events(folder, limit=limit) == load_events(folder)[:limit]


def test_load_events_rejects_a_negative_limit(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="limit"):
        load_events(_write(tmp_path / "ml"), limit=-1)


@pytest.mark.parametrize(
    ("bad_row", "needle"),
    [
        ("1,1,four,100", "rating"),
        ("1,1,4.0,yesterday", "timestamp"),
        ("1,1,4.0", "fields"),
        ("x,1,4.0,100", "userId"),
        ("1,,4.0,100", "movieId"),
        ("1,1,7.0,100", "range"),
    ],
)
def test_malformed_rating_rows_name_the_line(tmp_path: Path, bad_row: str, needle: str) -> None:
    ratings = "userId,movieId,rating,timestamp\n1,1,4.0,100\n" + bad_row + "\n"
    folder = _write(tmp_path / "ml", ratings=ratings)
    with pytest.raises(DatasetError) as info:
        load_events(folder)
    message = str(info.value)
    assert "ratings.csv:3" in message
    assert needle in message
    assert "\n" not in message


def test_wrong_header_is_reported(tmp_path: Path) -> None:
    folder = _write(tmp_path / "ml", ratings="user,item,stars,when\n1,1,4.0,100\n")
    with pytest.raises(DatasetError, match=r"ratings.csv:1: expected header"):
        load_events(folder)


def test_malformed_movie_row_names_the_line(tmp_path: Path) -> None:
    folder = _write(tmp_path / "ml", movies="movieId,title,genres\n1,Toy Story (1995)\n")
    with pytest.raises(DatasetError, match=r"movies.csv:2"):
        load_items(folder)


# ---- real data ----


@pytest.mark.skipif(
    _real_dir() is None, reason="ml-latest-small not found (set RECSTREAM_MOVIELENS)"
)
def test_real_ml_latest_small() -> None:
    folder = _real_dir()
    assert folder is not None
    items = load_items(folder)
    assert len(items) == 9_742
    assert len({i.item_id for i in items}) == 9_742

    started = time.perf_counter()
    events = load_events(folder)
    elapsed = time.perf_counter() - started
    assert len(events) == 100_836
    assert elapsed < 5.0  # budget is ~1 s; generous so a loaded CI box does not flake
    assert all(a.ts <= b.ts for a, b in zip(events, events[1:]))
    assert len({e.event_id for e in events}) == len(events)
    known = {i.item_id for i in items}
    assert all(e.item_id in known for e in events)


# ---- download ----


def test_download_unreachable_fails_fast_and_cleanly(tmp_path: Path) -> None:
    dest = tmp_path / "data"
    url = "http://127.0.0.1:9/nothing.zip"
    started = time.perf_counter()
    with pytest.raises(DatasetError) as info:
        download(dest, url=url, timeout=5.0)
    assert time.perf_counter() - started < 5.0
    message = str(info.value)
    assert url in message
    assert "download it by hand" in message
    assert "--movielens DIR" in message
    assert "\n" not in message
    assert info.value.__cause__ is None  # no chained traceback for the CLI to show
    assert not dest.exists() or not any(dest.iterdir())  # nothing half-written


def test_download_from_a_file_url(tmp_path: Path) -> None:
    archive = _zip_dataset(tmp_path)
    dest = tmp_path / "data"
    folder = download(dest, url=archive.as_uri())
    assert folder == (dest / "ml-latest-small").resolve()
    assert [p.name for p in dest.iterdir()] == ["ml-latest-small"]  # no temp leftovers
    assert len(load_items(folder)) == 4
    assert len(load_events(folder)) == 6


def test_download_reuses_an_existing_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "data"
    existing = _write(dest / "ml-latest-small")

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("should not download")

    monkeypatch.setattr(movielens.urllib.request, "urlopen", no_network)
    assert download(dest) == existing.resolve()


def test_download_rejects_a_bad_zip(tmp_path: Path) -> None:
    bogus = tmp_path / "served" / "ml-latest-small.zip"
    bogus.parent.mkdir()
    bogus.write_bytes(b"<html>not a zip</html>")
    dest = tmp_path / "data"
    with pytest.raises(DatasetError, match="not a valid zip") as info:
        download(dest, url=bogus.as_uri())
    assert "download it by hand" in str(info.value)
    assert list(dest.iterdir()) == []


def test_download_rejects_a_zip_without_the_dataset(tmp_path: Path) -> None:
    archive = tmp_path / "served" / "ml-latest-small.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ml-latest-small/README.txt", "hello")
    dest = tmp_path / "data"
    with pytest.raises(DatasetError, match="ratings.csv"):
        download(dest, url=archive.as_uri())
    assert list(dest.iterdir()) == []


def test_download_missing_file_url(tmp_path: Path) -> None:
    url = (tmp_path / "nope" / "ml-latest-small.zip").as_uri()
    with pytest.raises(DatasetError, match="could not download"):
        download(tmp_path / "data", url=url)
