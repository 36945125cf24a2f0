"""After a kill -9 the worker drops its local table cache and recovers from the changelog (streams.worker.main)."""

from __future__ import annotations

from pathlib import Path

from streams.worker.main import CLEAN_MARKER, discard_cache_after_crash


def _tables(worker_dir: Path) -> Path:
    tables = worker_dir / "faust" / "recstream-data" / "v1" / "tables"
    tables.mkdir(parents=True)
    (tables / "users-0.db").write_text("rocksdb")
    return worker_dir / "faust"


def test_cache_of_a_killed_worker_is_discarded(tmp_path: Path) -> None:
    faust_dir = _tables(tmp_path)  # no clean-shutdown marker: the last run was killed
    discard_cache_after_crash(tmp_path)
    assert not faust_dir.exists()


def test_cache_of_a_cleanly_stopped_worker_is_kept_and_the_marker_consumed(tmp_path: Path) -> None:
    faust_dir = _tables(tmp_path)
    (tmp_path / CLEAN_MARKER).touch()
    discard_cache_after_crash(tmp_path)
    assert faust_dir.exists()
    # The marker is consumed at start: if this run is killed, the next start sees no marker.
    assert not (tmp_path / CLEAN_MARKER).exists()


def test_first_start_has_nothing_to_discard(tmp_path: Path) -> None:
    discard_cache_after_crash(tmp_path)
    assert not (tmp_path / "faust").exists()
