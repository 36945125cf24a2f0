"""MovieLens (ml-latest-small) as recstream records.

The ratings become an event stream: a replay in timestamp order is what the streaming pipeline
would have seen live, and mapping star ratings onto event types lets the same ranking code serve
both the demo and the offline evaluation. Only the stdlib is used so the loaders run anywhere.
"""

from __future__ import annotations

import csv
import gc
import http.client
import random
import sys
import tempfile
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from tqdm import tqdm

from models.datasets import DatasetError
from schemas.records import Event, EventType, Item

REQUIRED_FILES = ("movies.csv", "ratings.csv")
ML_LATEST_SMALL_URL = "https://files.grouplens.org/datasets/movielens/ml-latest-small.zip"

_MOVIES_HEADER = ["movieId", "title", "genres"]
_RATINGS_HEADER = ["userId", "movieId", "rating", "timestamp"]
_NO_GENRES = "(no genres listed)"
_CHUNK = 64 * 1024


def check_dir(path: str | Path) -> Path:
    """Fail early, before any streaming starts, when the folder is not an unpacked MovieLens."""
    folder = Path(path).expanduser().resolve()
    for name in REQUIRED_FILES:
        if not (folder / name).is_file():
            raise DatasetError(
                f"{folder / name} not found: pass --movielens DIR pointing at an unpacked "
                f"ml-latest-small folder (or run `recstream dataset download`)"
            )
    return folder


def load_items(dir: str | Path) -> list[Item]:
    """The catalog from movies.csv; genres become categories so the encoder sees them."""
    path = check_dir(dir) / "movies.csv"
    items: list[Item] = []
    for line, row in _rows(path, _MOVIES_HEADER):
        movie_id, title, genres = row
        _require_id(movie_id, "movieId", path, line)
        if not title:
            raise DatasetError(f"{path}:{line}: empty title; fix or remove that row")
        categories = [] if genres in ("", _NO_GENRES) else genres.split("|")
        items.append(Item(item_id=movie_id, title=title, categories=categories, op="upsert"))
    return items


def rating_to_type(rating: float) -> EventType:
    """Stars carry intent: 4+ is as strong as a purchase, a middling 3 a click, less is browsing."""
    if rating >= 4:
        return EventType.PURCHASE
    if rating >= 3:
        return EventType.CLICK
    return EventType.BROWSE


TIE_ORDERS = ("shuffle", "file")
DEFAULT_SEED = 0


def load_events(
    dir: str | Path, limit: int | None = None, tie_order: str = "shuffle", seed: int = DEFAULT_SEED
) -> list[Event]:
    """The ratings replayed as events, oldest first.

    MovieLens stamps ratings in whole seconds and sorts ratings.csv by user, then movieId, so a
    user's ratings within one second would keep ascending movieId order under a stable sort: a
    sequence model could learn the ids' order rather than the user's. By default ("shuffle") the
    events of one user that share a timestamp come in a random order drawn from `seed`; "file"
    keeps the file's order. Either way every replay with the same arguments is identical, and event
    ids are derived from the row so a re-run produces the same ids (idempotent writes downstream).
    """
    if limit is not None and limit < 0:
        raise DatasetError(f"limit must be >= 0, got {limit}")
    if tie_order not in TIE_ORDERS:
        raise DatasetError(f"tie order must be one of {', '.join(TIE_ORDERS)}, got {tie_order!r}")
    path = check_dir(dir) / "ratings.csv"
    with _gc_paused():
        return _build_events(path, limit, tie_order, seed)


def tie_keys(rows: list[tuple[str, str, float, int]], tie_order: str, seed: int) -> list[tuple[int, int, float]]:
    """Sort keys (timestamp, position of the row's (user, timestamp) group, order within the group).

    Only rows of one user with one timestamp trade places: groups keep their file position, so the
    interleaving of different users within a second is the file's in both orders.
    """
    group_at: dict[tuple[str, int], int] = {}
    firsts = [group_at.setdefault((user, ts), i) for i, (user, _movie, _rating, ts) in enumerate(rows)]
    if tie_order == "file":
        within = [float(i) for i in range(len(rows))]
    else:
        rng = random.Random(seed)
        within = [rng.random() for _ in rows]
    return [(row[3], first, w) for row, first, w in zip(rows, firsts, within)]


def _build_events(path: Path, limit: int | None, tie_order: str, seed: int) -> list[Event]:
    parsed = [_parse_rating(path, line, row) for line, row in _rows(path, _RATINGS_HEADER)]
    keys = tie_keys(parsed, tie_order, seed)
    order = sorted(range(len(parsed)), key=keys.__getitem__)
    parsed = [parsed[i] for i in order]
    if limit is not None:
        parsed = parsed[:limit]
    # Full validation: in pydantic 2.x it is as fast as model_construct (the core is compiled),
    # so nothing unchecked ever reaches the stream.
    validate = Event.model_validate
    return [
        validate(
            {
                "event_id": f"ml-{user}-{movie}-{ts}",
                "user_id": user,
                "type": rating_to_type(rating),
                "item_id": movie,
                "ts": ts * 1000,
            }
        )
        for user, movie, rating, ts in parsed
    ]


def download(dest_dir: Path, url: str = ML_LATEST_SMALL_URL, timeout: float = 30.0) -> Path:
    """Fetch and unpack the dataset once; later calls reuse the unpacked folder.

    The zip goes to a temporary file and is unpacked into a temporary folder, and only a complete,
    checked folder is renamed into place, so an interrupted run leaves nothing half-written.
    """
    dest_dir = Path(dest_dir).expanduser()
    target = dest_dir / _folder_name(url)
    try:
        return check_dir(target)
    except DatasetError:
        pass
    hint = f"download it by hand from {url}, unzip it and pass --movielens DIR"
    if target.exists():
        raise DatasetError(f"{target} exists but is incomplete; delete it and retry, or {hint}")
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".download-", dir=dest_dir) as tmp:
            archive = Path(tmp) / "archive.zip"
            _fetch(url, archive, timeout)
            unpacked = Path(tmp) / "unpacked"
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(unpacked)
            found = unpacked / target.name
            if not all((found / name).is_file() for name in REQUIRED_FILES):
                raise DatasetError(
                    f"the archive from {url} has no {target.name}/ folder with "
                    f"{' and '.join(REQUIRED_FILES)}; {hint}"
                )
            found.rename(target)
    except DatasetError:
        raise
    except zipfile.BadZipFile as exc:
        raise DatasetError(f"{url} is not a valid zip archive ({_one_line(exc)}); {hint}") from None
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise DatasetError(f"could not download {url} ({_one_line(exc)}); {hint}") from None
    return check_dir(target)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Allocating ~10^5 acyclic records sets off cycle collections that find nothing.

    They cost a quarter or more of the load time; pausing the collector only delays them.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _rows(path: Path, header: list[str]) -> Iterator[tuple[int, list[str]]]:
    """CSV rows with their line numbers, after a header check, so errors can point at a line."""
    try:
        with path.open(encoding="utf-8", newline="") as f:
            reader = csv.reader(f)
            first = next(reader, None)
            if first is None or [c.strip().lstrip("\ufeff") for c in first] != header:
                raise DatasetError(
                    f"{path}:1: expected header {','.join(header)}, got "
                    f"{','.join(first or []) or 'an empty file'}; is this a MovieLens file?"
                )
            width = len(header)
            for row in reader:
                if len(row) != width:
                    if not row:  # a blank line, e.g. a trailing one
                        continue
                    raise DatasetError(
                        f"{path}:{reader.line_num}: expected {width} fields, got {len(row)}; "
                        f"fix or remove that row"
                    )
                yield reader.line_num, row
    except UnicodeDecodeError as exc:
        raise DatasetError(
            f"{path}: not UTF-8 text ({exc.reason}); re-download the dataset"
        ) from None
    except csv.Error as exc:
        raise DatasetError(f"{path}: malformed CSV ({exc}); re-download the dataset") from None


def _parse_rating(path: Path, line: int, row: list[str]) -> tuple[str, str, float, int]:
    user, movie, rating_text, ts_text = row
    _require_id(user, "userId", path, line)
    _require_id(movie, "movieId", path, line)
    try:
        rating = float(rating_text)
        ts = int(ts_text)
    except ValueError:
        raise DatasetError(
            f"{path}:{line}: bad rating {rating_text!r} or timestamp {ts_text!r} "
            f"(need a number and whole seconds); fix or remove that row"
        ) from None
    if not 0 <= rating <= 5 or ts < 0:
        raise DatasetError(
            f"{path}:{line}: rating {rating_text} or timestamp {ts_text} out of range "
            f"(0-5 stars, non-negative seconds); fix or remove that row"
        )
    return user, movie, rating, ts


def _require_id(value: str, column: str, path: Path, line: int) -> None:
    """MovieLens ids are integers; anything else means a shifted or corrupted row."""
    if not value.isdigit() or len(value) > 256:
        raise DatasetError(
            f"{path}:{line}: {column} {value!r} is not a whole number; fix or remove that row"
        )


def _fetch(url: str, dest: Path, timeout: float) -> None:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (URL is the user's)
        total = _content_length(response)
        with dest.open("wb") as out, tqdm(
            total=total,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=f"downloading {_folder_name(url)}",
            file=sys.stderr,
            disable=None,  # no bar when stderr is not a terminal (logs, CI)
            leave=False,
        ) as bar:
            received = _copy(response, out, bar)
    if total is not None and received != total:
        raise OSError(f"connection closed after {received} of {total} bytes")


def _copy(src: IO[bytes], dst: IO[bytes], bar: tqdm) -> int:
    received = 0
    while chunk := src.read(_CHUNK):
        dst.write(chunk)
        received += len(chunk)
        bar.update(len(chunk))
    return received


def _content_length(response: object) -> int | None:
    value = getattr(response, "headers", {}).get("Content-Length")
    return int(value) if value and value.isdigit() else None


def _folder_name(url: str) -> str:
    """A MovieLens zip unpacks to a folder of its own name (ml-latest-small.zip → ml-latest-small)."""
    name = Path(urllib.parse.urlparse(url).path).name
    if name.endswith(".zip") and len(name) > len(".zip"):
        return name.removesuffix(".zip")
    return "ml-latest-small"


def _one_line(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    text = " ".join(str(reason).split())
    return text or type(exc).__name__
