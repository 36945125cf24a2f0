"""The item index (models.index): cosine retrieval, deletes as marks, growth, crash-safe persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.index import INDEX_FILE, META_FILE, ItemIndex, text_hash

DIM = 4
E = np.eye(DIM, dtype=np.float32)
AB = (E[0] + E[1]) / np.sqrt(2)


def _unit(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _small() -> ItemIndex:
    idx = ItemIndex(DIM, capacity=8)
    idx.upsert("a", "Alpha", ["x"], "ha", E[0])
    idx.upsert("b", "Beta", ["y"], "hb", E[1])
    idx.upsert("c", "Gamma", [], "hc", E[2])
    idx.upsert("ab", "AlphaBeta", ["x", "y"], "hab", AB)
    return idx


def _ids(row: list[tuple[str, float]]) -> list[str]:
    return [i for i, _ in row]


def test_query_returns_nearest_by_cosine() -> None:
    idx = _small()
    (row,) = idx.query(E[0:1], 3)
    assert _ids(row) == ["a", "ab", "b"] or _ids(row) == ["a", "ab", "c"]
    assert row[0][1] == pytest.approx(1.0, abs=1e-5)
    assert row[1][1] == pytest.approx(1 / np.sqrt(2), abs=1e-5)
    assert row[2][1] == pytest.approx(0.0, abs=1e-5)
    # Scores are best first.
    assert [s for _, s in row] == sorted((s for _, s in row), reverse=True)


def test_query_is_scale_invariant_and_batched() -> None:
    idx = _small()
    rows = idx.query(np.stack([E[1] * 7.5, E[2] * 0.01, AB]), 1)
    assert [_ids(r) for r in rows] == [["b"], ["c"], ["ab"]]
    assert all(r[0][1] == pytest.approx(1.0, abs=1e-5) for r in rows)


def test_len_contains_meta_and_titles() -> None:
    idx = _small()
    assert len(idx) == 4
    assert "a" in idx and "zzz" not in idx
    meta = idx.meta("ab")
    assert meta is not None and meta.title == "AlphaBeta" and meta.categories == ["x", "y"] and meta.text_hash == "hab"
    assert idx.title("a") == "Alpha"
    assert idx.title("unknown") == "unknown"
    assert idx.meta("unknown") is None
    np.testing.assert_allclose(idx.vectors(["b", "a"]), np.stack([E[1], E[0]]), atol=1e-6)
    assert idx.vectors([]).shape == (0, DIM)


def test_new_item_needs_a_vector() -> None:
    idx = _small()
    with pytest.raises(ValueError):
        idx.upsert("new", "New", [], "h", None)
    assert "new" not in idx and len(idx) == 4


def test_delete_hides_from_query_and_contains() -> None:
    idx = _small()
    assert idx.delete("a") is True
    assert "a" not in idx
    assert idx.is_deleted("a") and not idx.is_deleted("b")
    assert idx.is_deleted("never-seen")
    assert len(idx) == 3
    (row,) = idx.query(E[0:1], 10)
    assert "a" not in _ids(row)
    assert sorted(_ids(row)) == ["ab", "b", "c"]
    assert sorted(idx.item_ids()) == ["ab", "b", "c"]
    assert sorted(idx.item_ids(live_only=False)) == ["a", "ab", "b", "c"]
    # Deleting twice, or an unknown item, changes nothing.
    assert idx.delete("a") is False
    assert idx.delete("nope") is False
    assert len(idx) == 3


def test_reupsert_after_delete_revives() -> None:
    idx = _small()
    idx.delete("a")
    # Unchanged text: no new vector, the old one is kept.
    idx.upsert("a", "Alpha again", ["x"], "ha", None)
    assert "a" in idx and len(idx) == 4
    assert idx.title("a") == "Alpha again"
    (row,) = idx.query(E[0:1], 1)
    assert row[0][0] == "a" and row[0][1] == pytest.approx(1.0, abs=1e-5)
    # Revive with a new vector.
    idx.delete("a")
    idx.upsert("a", "Alpha", ["x"], "ha2", E[3])
    assert "a" in idx and len(idx) == 4
    (row,) = idx.query(E[3:4], 1)
    assert row[0][0] == "a"
    assert idx.meta("a").text_hash == "ha2"  # type: ignore[union-attr]


def test_replacing_a_vector_moves_the_item() -> None:
    idx = _small()
    idx.upsert("c", "Gamma", [], "hc2", E[0])
    assert len(idx) == 4
    top2 = set(_ids(idx.query(E[0:1], 2)[0]))
    assert top2 == {"a", "c"}
    (row,) = idx.query(E[2:3], 4)
    assert "c" not in [i for i, s in row if s > 0.5]
    np.testing.assert_allclose(idx.vectors(["c"])[0], E[0], atol=1e-6)


def test_upsert_same_text_without_vector_keeps_vector_and_updates_meta() -> None:
    idx = _small()
    idx.upsert("b", "Beta 2", ["z"], "hb", None)
    assert idx.meta("b").categories == ["z"]  # type: ignore[union-attr]
    np.testing.assert_allclose(idx.vectors(["b"])[0], E[1], atol=1e-6)
    assert len(idx) == 4


def test_needs_embedding() -> None:
    idx = _small()
    assert idx.needs_embedding("new", "anything")
    assert not idx.needs_embedding("a", "ha")
    assert idx.needs_embedding("a", "other")


def test_text_hash() -> None:
    assert text_hash("Alien (1979)") == text_hash("Alien (1979)")
    assert text_hash("Alien (1979)") != text_hash("Aliens (1986)")
    assert isinstance(text_hash("é"), str) and len(text_hash("é")) == 24


def test_capacity_grows_beyond_initial_capacity() -> None:
    vecs = _unit(60, 16, seed=1)
    idx = ItemIndex(16, capacity=2)
    for n, v in enumerate(vecs):
        idx.upsert(f"i{n}", f"T{n}", [], f"h{n}", v)
    assert len(idx) == 60
    rows = idx.query(vecs, 1)
    assert [r[0][0] for r in rows] == [f"i{n}" for n in range(60)]
    assert all(r[0][1] == pytest.approx(1.0, abs=1e-4) for r in rows)


def test_query_with_k_over_live_items_returns_live_only() -> None:
    vecs = _unit(30, 8, seed=2)
    idx = ItemIndex(8, capacity=64)
    for n, v in enumerate(vecs):
        idx.upsert(f"i{n}", f"T{n}", [], f"h{n}", v)
    for n in range(0, 30, 3):
        idx.delete(f"i{n}")
    live = {f"i{n}" for n in range(30) if n % 3}
    rows = idx.query(vecs[:5], 100)
    for row in rows:
        assert set(_ids(row)) == live
        assert len(row) == len(live) == len(idx)


def test_query_edge_cases() -> None:
    empty = ItemIndex(DIM, capacity=4)
    assert empty.query(E[:2], 5) == [[], []]
    idx = _small()
    assert idx.query(E[:1], 0) == [[]]
    assert idx.query(np.zeros((0, DIM), np.float32), 3) == []
    for item in ("a", "b", "c", "ab"):
        idx.delete(item)
    assert idx.query(E[:1], 3) == [[]]


# -- persistence ------------------------------------------------------------------------------


def _saved_index(tmp_path: Path) -> tuple[ItemIndex, Path, np.ndarray]:
    vecs = _unit(40, 8, seed=5)
    idx = ItemIndex(8, capacity=4, ef_search=64)
    for n, v in enumerate(vecs):
        idx.upsert(f"i{n}", f"Title {n} é", [f"g{n % 3}"], f"h{n}", v)
    idx.delete("i3")
    idx.delete("i7")
    target = tmp_path / "index"
    idx.save(target, {"items_offsets": {"0": 41}, "note": "x"})
    return idx, target, vecs


def test_save_load_round_trip(tmp_path: Path) -> None:
    idx, target, vecs = _saved_index(tmp_path)
    assert (target / INDEX_FILE).is_file() and (target / META_FILE).is_file()
    assert ItemIndex.exists(target)
    loaded, checkpoint = ItemIndex.load(target)
    assert checkpoint == {"items_offsets": {"0": 41}, "note": "x"}
    assert loaded.dim == 8 and loaded.ef_search == 64
    assert len(loaded) == len(idx) == 38
    assert "i3" not in loaded and "i7" not in loaded and "i4" in loaded
    assert loaded.is_deleted("i3")
    for n in (0, 3, 39):
        assert loaded.meta(f"i{n}") == idx.meta(f"i{n}")
    assert list(loaded.item_ids(live_only=False)) == list(idx.item_ids(live_only=False))
    assert loaded.query(vecs, 5) == idx.query(vecs, 5)
    np.testing.assert_allclose(loaded.vectors(["i0", "i39"]), idx.vectors(["i0", "i39"]), atol=1e-6)
    # No temporary or previous copies left behind.
    assert not (tmp_path / "index.tmp").exists() and not (tmp_path / "index.old").exists()


def test_loaded_index_keeps_working(tmp_path: Path) -> None:
    _, target, vecs = _saved_index(tmp_path)
    loaded, _ = ItemIndex.load(target)
    more = _unit(20, 8, seed=9)
    for n, v in enumerate(more):
        loaded.upsert(f"new{n}", f"New {n}", [], f"n{n}", v)  # beyond the saved capacity
    loaded.upsert("i3", "Title 3 é", ["g0"], "h3", None)  # revive a deleted item
    assert len(loaded) == 38 + 20 + 1
    assert [r[0][0] for r in loaded.query(more, 1)] == [f"new{n}" for n in range(20)]
    assert loaded.query(vecs[3:4], 1)[0][0][0] == "i3"
    assert loaded.query(vecs[0:1], 1)[0][0][0] == "i0"


def test_save_replaces_previous_save(tmp_path: Path) -> None:
    idx, target, vecs = _saved_index(tmp_path)
    idx.delete("i0")
    idx.save(target, {"v": 2})
    loaded, checkpoint = ItemIndex.load(target)
    assert checkpoint == {"v": 2}
    assert "i0" not in loaded and len(loaded) == 37
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]


def test_crash_leaving_only_old_copy_still_loads(tmp_path: Path) -> None:
    idx, target, vecs = _saved_index(tmp_path)
    # A crash between the two renames of `save`: the new copy is gone, the previous one is `.old`.
    old = tmp_path / "index.old"
    target.rename(old)
    assert not target.exists()
    assert ItemIndex.exists(target)
    loaded, checkpoint = ItemIndex.load(target)
    assert checkpoint == {"items_offsets": {"0": 41}, "note": "x"}
    assert len(loaded) == 38
    assert loaded.query(vecs, 3) == idx.query(vecs, 3)
    # The next save recovers a normal layout.
    loaded.save(target, {"v": 3})
    assert target.is_dir() and not old.exists()
    assert ItemIndex.load(target)[1] == {"v": 3}


def test_exists_false_for_missing_or_partial(tmp_path: Path) -> None:
    assert not ItemIndex.exists(tmp_path / "nothing")
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / META_FILE).write_text("{}")
    assert not ItemIndex.exists(partial)


def test_vectors_of_deleted_items_are_refused_with_a_key_error() -> None:
    idx = _small()
    idx.delete("a")
    with pytest.raises(KeyError, match="deleted"):
        idx.vectors(["a"])
    idx.upsert("a", "A", [], "h-a", None)  # revived with its old vector
    np.testing.assert_allclose(idx.vectors(["a"])[0], E[0], atol=1e-6)
