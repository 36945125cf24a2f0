"""Fine-tuning the encoder on co-consumed pairs: which pairs, which batches, and a real (tiny) training run."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.catalog import Catalog, embedded_again
from models.encoder import ENCODER_INFO_FILE, SentenceEncoder, bundled_model_path, check_model_folder, encoder_name
from models.encoder_training import (
    PairOptions,
    append_shift,
    TrainOptions,
    batches_without_repeats,
    blend_with_base,
    co_consumed,
    content_hash,
    fine_tune,
    match_spread,
    mean_cosine,
    save_tuned,
    spread_shift,
    select_pairs,
)
from models.index import ItemIndex
from schemas.records import Event, EventType, Item


def _event(n: int, user: str, item: str, kind: EventType = EventType.CLICK, ts: int | None = None) -> Event:
    return Event(event_id=f"e{n}", user_id=user, type=kind, item_id=item, ts=n if ts is None else ts)


def test_pairs_come_from_nearby_positive_events_of_one_user_before_the_cut_off() -> None:
    events = [_event(0, "u", "a"), _event(1, "u", "b"), _event(2, "u", "x", EventType.DISLIKE),
              _event(3, "v", "c"), _event(4, "u", "c"), _event(5, "u", "a"), _event(6, "u", "d")]
    counts = co_consumed(events, window=2)
    # window 2: c pairs with a and b; a again with b and c; d with c and a; the dislike pairs with nothing
    assert counts == {("a", "b"): 2, ("a", "c"): 2, ("b", "c"): 1, ("c", "d"): 1, ("a", "d"): 1}
    assert co_consumed(events, window=2, until_ts=4) == {("a", "b"): 1}
    assert all("x" not in pair for pair in counts)


def test_the_strongest_pairs_are_kept_and_no_item_dominates() -> None:
    counts = {("a", "b"): 9, ("a", "c"): 8, ("a", "d"): 7, ("b", "c"): 3, ("c", "d"): 1, ("b", "z"): 5}
    texts = {i: i for i in "abcd"}
    chosen = select_pairs(counts, texts, PairOptions(min_count=2, max_per_item=2))  # type: ignore[arg-type]
    # ("b","z") lacks a text, ("a","d") would give "a" a third pair, ("c","d") is below min_count
    assert chosen == [("a", "b"), ("a", "c"), ("b", "c")]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40)).filter(lambda p: p[0] != p[1]), max_size=300),
       st.integers(2, 70), st.integers(0, 10**6))
def test_batches_cover_every_pair_once_and_never_repeat_an_item(pairs, batch_size, seed) -> None:
    named = [(f"i{a}", f"i{b}") for a, b in pairs]
    batches = batches_without_repeats(named, batch_size, random.Random(seed))
    assert sorted(i for b in batches for i in b) == list(range(len(named)))
    for batch in batches:
        assert 0 < len(batch) <= batch_size
        items = [item for i in batch for item in named[i]]
        assert len(items) == len(set(items)), "an item twice in a batch would be its own negative"


TEXTS = {"alien": "Alien (1979). Genres: Horror, Sci-Fi", "notting": "Notting Hill (1999). Genres: Comedy, Romance",
         "aliens": "Aliens (1986). Genres: Action, Sci-Fi", "love": "Love Actually (2003). Genres: Comedy, Romance",
         "heat": "Heat (1995). Genres: Action, Crime, Thriller", "toy": "Toy Story (1995). Genres: Animation"}
PAIRS = [("alien", "notting"), ("aliens", "love"), ("heat", "toy")] * 4
FAST = TrainOptions(epochs=1, batch_size=3, learning_rate=5e-4, warmup=0.0)


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[float]]:
    """A real fine-tune of the bundled MiniLM: few pairs, a high learning rate, so it moves visibly."""
    model, result = fine_tune(bundled_model_path(), PAIRS, TEXTS, FAST)
    assert result.steps == 4 and len(result.losses) == 4
    folder = save_tuned(model, tmp_path_factory.mktemp("encoders"), "all-MiniLM-L6-v2", {"cutoff_ts": 123})
    return folder, result.losses


def test_a_fine_tune_pulls_its_pairs_together_and_is_saved_as_a_version(tuned) -> None:
    folder, losses = tuned
    assert losses[-1] < losses[0], "the loss falls on pairs seen again"
    info = json.loads((folder / ENCODER_INFO_FILE).read_text())
    assert folder.name == info["version"] == f"all-MiniLM-L6-v2-ft-{content_hash(folder)[:12]}"
    assert info["base_model"] == "all-MiniLM-L6-v2" and info["cutoff_ts"] == 123
    base, new = SentenceEncoder(), SentenceEncoder(check_model_folder(folder))
    assert new.name == encoder_name(False, folder) == info["version"] and base.name == "all-MiniLM-L6-v2"
    texts = ["Alien (1979). Genres: Horror, Sci-Fi", "Notting Hill (1999). Genres: Comedy, Romance"]
    before, after = base.encode(texts), new.encode(texts)
    assert float(after[0] @ after[1]) > float(before[0] @ before[1]) + 0.05, "the trained pair moved closer"


def test_a_folder_without_a_model_is_refused_with_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="recstream encoder train"):
        check_model_folder(tmp_path)


def test_the_catalog_is_embedded_again_by_another_encoder_with_its_descriptions(tuned) -> None:
    folder, _ = tuned
    base, new = SentenceEncoder(), SentenceEncoder(folder)
    old = ItemIndex(base.dim)
    items = [Item(item_id=str(n), title=f"Film {n}", categories=["Drama"] if n % 2 else [],
                  description="A long night." if n == 3 else None) for n in range(20)]
    Catalog(old, base).ingest(items + [Item(item_id="5", op="delete")])
    again = embedded_again(old.described(), new, chunk=7)
    assert sorted(again.item_ids()) == sorted(i.item_id for i in items if i.item_id != "5")
    assert again.meta("3").text == "Film 3. Genres: Drama. A long night." and again.meta("3").categories == ["Drama"]
    np.testing.assert_allclose(again.vectors(["3"])[0], new.encode(["Film 3. Genres: Drama. A long night."])[0],
                               atol=1e-5)
    # an unchanged text is not embedded again by the catalog that now uses the new index
    assert Catalog(again, new).texts_to_embed([items[3]]) == {}


def _moved(model) -> float:
    """How far the six texts' vectors moved from the base model's (mean squared distance)."""
    texts = list(TEXTS.values())
    before, after = SentenceEncoder().encode(texts), model.encode(texts, normalize_embeddings=True)
    return float(((after - before) ** 2).sum(axis=1).mean())


def test_the_anchor_term_keeps_vectors_near_the_base_model() -> None:
    free, _ = fine_tune(bundled_model_path(), PAIRS, TEXTS, FAST)
    anchored, result = fine_tune(bundled_model_path(), PAIRS, TEXTS, dataclasses.replace(FAST, anchor=20.0))
    assert result.steps == 4
    assert _moved(anchored) < 0.5 * _moved(free), (_moved(anchored), _moved(free))


def test_blending_with_the_base_puts_every_weight_between_the_two(tuned) -> None:
    from sentence_transformers import SentenceTransformer

    folder, _ = tuned
    base = SentenceTransformer(str(bundled_model_path()), device="cpu").state_dict()
    tuned_weights = {k: v.clone() for k, v in SentenceTransformer(str(folder), device="cpu").state_dict().items()}
    blended = blend_with_base(SentenceTransformer(str(folder), device="cpu"), bundled_model_path(), 0.25).state_dict()
    moved = [k for k, v in base.items() if v.is_floating_point() and not bool((v == tuned_weights[k]).all())]
    assert moved, "the fine-tune changed no weight"
    for k in moved:
        np.testing.assert_allclose(blended[k].numpy(), (0.25 * base[k] + 0.75 * tuned_weights[k]).numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="base_weight"):
        blend_with_base(blended, bundled_model_path(), 1.0)


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 300), st.integers(2, 24), st.integers(0, 10**6))
def test_the_mean_cosine_of_two_items_is_the_brute_force_one(n: int, dim: int, seed: int) -> None:
    vectors = _unit(np.random.default_rng(seed).normal(size=(n, dim)) + 0.5)
    sims = vectors @ vectors.T
    brute = (sims.sum() - np.trace(sims)) / (n * (n - 1))
    assert mean_cosine(vectors) == pytest.approx(brute, abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(st.integers(50, 600), st.floats(0.5, 3.0), st.floats(0.05, 0.6), st.integers(0, 10**6))
def test_the_shift_gives_a_crowded_space_the_target_spread(n: int, crowding: float, target: float, seed: int) -> None:
    """A space pulled toward one direction (as the fine-tune pulls the catalog) gets the target mean cosine back;
    one already as spread as the target is left alone."""
    rng = np.random.default_rng(seed)
    crowded = _unit(rng.normal(size=(n, 16)) + crowding * rng.normal(size=16))
    shift = spread_shift(crowded, target)
    moved = crowded - shift
    moved /= np.linalg.norm(moved, axis=1, keepdims=True)
    if mean_cosine(crowded) <= target:
        assert not shift.any()
    else:
        assert mean_cosine(moved) == pytest.approx(target, abs=1e-6)
        assert np.linalg.norm(shift) < np.linalg.norm(crowded.mean(axis=0)) + 1e-9  # at most the whole mean


def test_a_spread_matched_model_loads_as_a_folder_and_has_the_base_spread(tmp_path: Path) -> None:
    """A model whose every vector is pulled one way (a fixed shift appended to the bundled one) gets the base
    model's spread back; the shift is part of the saved model (sentence-transformers' own modules), so whoever
    loads the folder gets it."""
    from sentence_transformers import SentenceTransformer

    pull = np.random.default_rng(3).normal(size=384)
    crowded = append_shift(SentenceTransformer(str(bundled_model_path()), device="cpu"), -pull / np.linalg.norm(pull))
    texts = list(TEXTS.values()) + [f"{t} (restored)" for t in TEXTS.values()]
    model, measured = match_spread(crowded, bundled_model_path(), texts)
    assert measured["tuned_mean_cosine"] > measured["base_mean_cosine"] + 0.2
    assert measured["matched_mean_cosine"] == pytest.approx(measured["base_mean_cosine"], abs=1e-3)
    saved = save_tuned(model, tmp_path, "all-MiniLM-L6-v2", {})
    vectors = SentenceEncoder(saved).encode(texts)
    assert mean_cosine(vectors) == pytest.approx(measured["base_mean_cosine"], abs=0.01)
    # What is near what survives: each text's nearest other text is the base model's.
    base = SentenceEncoder(bundled_model_path()).encode(texts)
    nearest = [np.argsort(-(v @ v.T), axis=1)[:, 1] for v in (vectors, base)]
    assert (nearest[0] == nearest[1]).mean() >= 0.8
