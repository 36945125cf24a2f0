"""The real sentence encoder (offline all-MiniLM-L6-v2) and catalog ingestion on top of it."""

from __future__ import annotations

import numpy as np
import pytest

from models.catalog import Catalog
from models.encoder import SentenceEncoder
from models.index import ItemIndex
from schemas.records import Item


@pytest.fixture(scope="module")
def encoder() -> SentenceEncoder:
    """The only place the real model is loaded (about 3 s)."""
    return SentenceEncoder()


def test_encoder_makes_unit_vectors_of_dim_384(encoder: SentenceEncoder) -> None:
    texts = [
        "Alien (1979). Genres: Horror, Sci-Fi",
        "Aliens (1986). Genres: Action, Sci-Fi",
        "Notting Hill (1999). Genres: Comedy, Romance",
    ]
    vecs = encoder.encode(texts)
    assert encoder.dim == 384
    assert vecs.shape == (3, 384) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)
    alien, aliens, notting = vecs
    assert float(alien @ aliens) > float(alien @ notting)
    # Deterministic: the same text embeds the same way again.
    np.testing.assert_allclose(encoder.encode(texts[:1])[0], alien, atol=1e-5)
    assert encoder.encode([]).shape == (0, 384)


def _item(item_id: str, title: str, categories: list[str] | None = None, op: str = "upsert") -> Item:
    return Item(item_id=item_id, title=title, categories=categories or [], op=op)  # type: ignore[arg-type]


def test_catalog_rejects_dimension_mismatch(encoder: SentenceEncoder) -> None:
    with pytest.raises(ValueError):
        Catalog(ItemIndex(8, capacity=4), encoder)


def test_catalog_ingest_embeds_only_what_changed(encoder: SentenceEncoder) -> None:
    catalog = Catalog(ItemIndex(encoder.dim, capacity=4), encoder)
    items = [
        _item("alien", "Alien (1979)", ["Horror", "Sci-Fi"]),
        _item("aliens", "Aliens (1986)", ["Action", "Sci-Fi"]),
        _item("notting", "Notting Hill (1999)", ["Comedy", "Romance"]),
    ]
    first = catalog.ingest(items)
    assert first.embedded == 3
    assert first.upserted == ["alien", "aliens", "notting"] and first.deleted == []
    assert len(catalog.index) == 3
    (row,) = catalog.index.query(encoder.encode([items[0].text()]), 2)
    assert [i for i, _ in row] == ["alien", "aliens"]
    assert row[0][1] == pytest.approx(1.0, abs=1e-4)

    # Re-delivered, unchanged items embed nothing.
    again = catalog.ingest(items)
    assert again.embedded == 0
    assert catalog.texts_to_embed(items) == {}
    assert len(catalog.index) == 3

    # Changed text is embedded again and the vector moves.
    before = catalog.index.vectors(["notting"])[0].copy()
    changed = _item("notting", "Notting Hill (1999)", ["Comedy", "Romance", "Drama"])
    update = catalog.ingest([changed])
    assert update.embedded == 1 and update.upserted == ["notting"]
    after = catalog.index.vectors(["notting"])[0]
    assert not np.allclose(before, after, atol=1e-4)
    np.testing.assert_allclose(after, encoder.encode([changed.text()])[0], atol=1e-4)

    # Delete, then an unchanged upsert revives the item without embedding.
    deleted = catalog.ingest([_item("alien", "", op="delete")])
    assert deleted.deleted == ["alien"] and deleted.embedded == 0
    assert "alien" not in catalog.index and len(catalog.index) == 2
    revived = catalog.ingest([items[0]])
    assert revived.embedded == 0 and revived.upserted == ["alien"]
    assert "alien" in catalog.index and len(catalog.index) == 3
    (row,) = catalog.index.query(encoder.encode([items[0].text()]), 1)
    assert row[0][0] == "alien"


def test_catalog_applies_in_log_order_and_deduplicates_texts(encoder: SentenceEncoder) -> None:
    catalog = Catalog(ItemIndex(encoder.dim, capacity=4), encoder)
    batch = [
        _item("a", "Same text"),
        _item("b", "Same text"),  # identical text: embedded once
        _item("a", "", op="delete"),  # upsert then delete in one batch ends deleted
        _item("ghost", "", op="delete"),  # deleting an unknown item is a no-op
    ]
    todo = catalog.texts_to_embed(batch)
    assert list(todo.values()) == ["Same text"]
    update = catalog.ingest(batch)
    assert update.embedded == 1
    assert update.upserted == ["a", "b"] and update.deleted == ["a"]
    assert "a" not in catalog.index and "b" in catalog.index


def test_encoder_is_safe_from_two_threads_at_once(encoder: SentenceEncoder) -> None:
    """A worker embeds catalog items on an executor thread while its event loop embeds search
    queries. Fast tokenizers raise "Already borrowed" when two threads use one at once; every call
    must instead succeed and give the vectors it gives alone."""
    from concurrent.futures import ThreadPoolExecutor

    from models.datasets.synthetic import generate_catalog

    items = [i.text() for i in generate_catalog()][:1000]
    queries = [f"{word} films from the {decade}s" for decade in range(1920, 2030, 10)
               for word in ("space", "love", "war", "heist", "ghost", "robot", "jazz", "desert", "ocean", "spy")]
    queries = (queries * 10)[:1000]
    expected_queries = {q: encoder.encode([q])[0] for q in set(queries)}
    expected_items = encoder.encode(items[:64])

    def load_catalog() -> list[np.ndarray]:
        return [encoder.encode(items[start : start + 64]) for start in range(0, len(items), 64)]

    with ThreadPoolExecutor(max_workers=1) as pool:
        loading = pool.submit(load_catalog)
        answered = 0
        for q in queries:
            np.testing.assert_allclose(encoder.encode([q])[0], expected_queries[q], atol=1e-5)
            answered += 1
            if loading.done() and answered >= 1000:
                break
        batches = loading.result()
    assert answered == 1000
    assert sum(len(b) for b in batches) == len(items)
    np.testing.assert_allclose(batches[0], expected_items, atol=1e-5)
