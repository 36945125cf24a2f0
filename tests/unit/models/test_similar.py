"""Similar items: behaviour first, text for new items, never the item itself, nothing for unknown ones."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from models.covisitation import CoVisit, CoVisitation
from models.index import ItemIndex
from models.params import CoreParams
from models.similar import similar_items

DIM = 8
PARAMS = CoreParams()


def catalog(n: int = 30, seed: int = 0) -> ItemIndex:
    vecs = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    index = ItemIndex(DIM, capacity=8)
    for i, v in enumerate(vecs):
        index.upsert(f"i{i}", f"Title {i}", [], f"h{i}", v)
    return index


def watched_after(covis: CoVisitation, first: str, then: str, times: int, ts: int = 1_000) -> None:
    for t in range(times):
        covis.apply(CoVisit(first, ts + 2 * t, ()))
        covis.apply(CoVisit(then, ts + 2 * t + 1, ((first, 1.0),)))


def test_what_people_went_on_to_comes_first_with_that_reason() -> None:
    index, covis = catalog(), CoVisitation(PARAMS)
    watched_after(covis, "i0", "i7", 5)
    watched_after(covis, "i0", "i9", 2, ts=5_000)
    out = similar_items("i0", index, covis, PARAMS, k=5)
    assert out is not None and [s.item_id for s in out[:2]] == ["i7", "i9"]
    assert out[0].reason == "people who watched Title 0 went on to this"
    assert all(s.item_id != "i0" for s in out) and len(out) == 5
    assert [s.score for s in out] == sorted((s.score for s in out), reverse=True)


def test_a_new_item_gets_its_content_neighbours_at_once() -> None:
    index, covis = catalog(), CoVisitation(PARAMS)
    watched_after(covis, "i1", "i2", 3)
    out = similar_items("i5", index, covis, PARAMS, k=4)  # nobody has watched i5
    nearest = [name for name, _ in index.query(index.vectors(["i5"]), 5)[0] if name != "i5"][:4]
    assert out is not None and [s.item_id for s in out] == nearest
    assert {s.reason for s in out} == {"similar to Title 5"}


def test_unknown_and_deleted_items_have_no_answer_and_deleted_neighbours_are_dropped() -> None:
    index, covis = catalog(), CoVisitation(PARAMS)
    watched_after(covis, "i0", "i3", 4)
    assert similar_items("nope", index, covis, PARAMS, k=5) is None
    index.delete("i3")
    out = similar_items("i0", index, covis, PARAMS, k=10)
    assert out is not None and "i3" not in {s.item_id for s in out}
    index.delete("i0")
    assert similar_items("i0", index, covis, PARAMS, k=5) is None


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 29), st.integers(1, 40), st.lists(st.tuples(st.integers(0, 29), st.integers(0, 29)), max_size=40))
def test_answers_are_k_distinct_live_items_never_the_item(item: int, k: int, pairs: list[tuple[int, int]]) -> None:
    index, covis = catalog(), CoVisitation(PARAMS)
    for n, (a, b) in enumerate(pairs):
        if a != b:
            watched_after(covis, f"i{a}", f"i{b}", 1, ts=1_000 + 10 * n)
    out = similar_items(f"i{item}", index, covis, PARAMS, k=k)
    assert out is not None
    ids = [s.item_id for s in out]
    # Everything related at all (a pair, or a positive cosine) is a candidate; k of them come back.
    vec = index.vectors([f"i{item}"])[0]
    related = {f"i{j}" for j in range(30) if j != item and (covis.pair(f"i{item}", f"i{j}") > 0
                                                            or float(index.vectors([f"i{j}"])[0] @ vec) > 1e-6)}
    assert len(ids) == len(set(ids)) == min(k, len(related)) and f"i{item}" not in ids
    assert all(s.reason and s.score > 0 for s in out)
