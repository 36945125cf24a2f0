"""The generated demo data: deterministic, self-consistent, with the taste structure it claims."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from models.datasets.synthetic import GENRES, favourite_genres, generate_catalog, generate_events
from schemas.records import Event, EventType, Item


def _catalog_by_id(items: list[Item]) -> dict[str, Item]:
    return {i.item_id: i for i in items}


def test_catalog_is_deterministic_per_seed() -> None:
    assert generate_catalog(seed=7) == generate_catalog(seed=7)
    assert generate_catalog(seed=7) != generate_catalog(seed=8)


def test_events_are_deterministic_per_seed() -> None:
    items = generate_catalog()
    assert generate_events(items, seed=7) == generate_events(items, seed=7)
    assert generate_events(items, seed=7) != generate_events(items, seed=8)


def test_catalog_shape() -> None:
    items = generate_catalog(seed=7, items_per_genre=30)
    assert len(items) == 30 * len(GENRES)
    assert 6 <= len(GENRES) <= 10
    assert len({i.item_id for i in items}) == len(items)
    assert len({i.title for i in items}) == len(items)
    for item in items:
        slug = GENRES[item.categories[0]].slug
        assert item.item_id.startswith(f"syn-{slug}-")
        assert item.op == "upsert"
        assert item.title and item.title.endswith(")")
        assert item.description and item.description.endswith(".")
        assert item.description.count(".") == 1  # one sentence
        assert 1 <= len(item.categories) <= 2
        assert len(set(item.categories)) == len(item.categories)
        assert set(item.categories) <= set(GENRES)
    per_genre = Counter(i.categories[0] for i in items)
    assert set(per_genre.values()) == {30}
    two_genres = sum(len(i.categories) == 2 for i in items)
    assert 0 < two_genres < len(items) * 0.35


def test_item_id_format() -> None:
    ids = {i.item_id for i in generate_catalog(items_per_genre=3)}
    assert "syn-scifi-003" in ids


def test_large_catalog_keeps_titles_unique() -> None:
    items = generate_catalog(seed=3, items_per_genre=150)  # more than the adjective x noun pairs
    assert len({i.title for i in items}) == len(items)
    assert len({i.item_id for i in items}) == len(items)


def test_favourite_genres() -> None:
    favourites = favourite_genres(seed=7, n_users=60)
    assert list(favourites) == [f"syn-user-{n:03d}" for n in range(60)]
    assert favourites == favourite_genres(seed=7, n_users=60)
    sizes = Counter(len(g) for g in favourites.values())
    assert set(sizes) == {1, 2}
    for genres in favourites.values():
        assert len(set(genres)) == len(genres)
        assert set(genres) <= set(GENRES)


def test_event_stream_consistency() -> None:
    items = generate_catalog()
    events = generate_events(items, seed=7, n_users=60, events_per_user=25)
    catalog = _catalog_by_id(items)
    assert len(events) == 60 * 25
    assert Counter(e.user_id for e in events) == {f"syn-user-{n:03d}": 25 for n in range(60)}
    assert [e.event_id for e in events] == [f"syn-7-{n}" for n in range(len(events))]
    assert events[0].ts == 1_700_000_000_000
    gaps = [b.ts - a.ts for a, b in zip(events, events[1:])]
    assert all(2_000 <= g <= 241_000 for g in gaps)  # seconds to minutes apart, strictly increasing
    for event in events:
        if event.type is EventType.SEARCH:
            assert event.item_id is None and event.query
        else:
            assert event.item_id in catalog and event.query is None


def test_users_are_interleaved() -> None:
    events = generate_events(generate_catalog(), n_users=60, events_per_user=25)
    first_user_positions = [n for n, e in enumerate(events) if e.user_id == "syn-user-000"]
    assert first_user_positions[-1] - first_user_positions[0] > len(events) // 2
    switches = sum(a.user_id != b.user_id for a, b in zip(events, events[1:]))
    assert switches > len(events) * 0.9


def test_type_mix_is_roughly_as_specified() -> None:
    events = generate_events(generate_catalog(), seed=7, n_users=200, events_per_user=25)
    counts = Counter(e.type for e in events)
    share = {t: counts[t] / len(events) for t in EventType}
    assert 0.03 <= share[EventType.SEARCH] <= 0.07
    assert counts[EventType.ERASE] == 0
    item_events = len(events) - counts[EventType.SEARCH]
    item_share = {t: counts[t] / item_events for t in EventType if t not in (EventType.SEARCH, EventType.ERASE)}
    assert 0.20 <= item_share[EventType.PURCHASE] <= 0.30
    assert 0.34 <= item_share[EventType.CLICK] <= 0.46
    assert 0.24 <= item_share[EventType.BROWSE] <= 0.36
    assert 0.03 <= item_share[EventType.DISLIKE] <= 0.07


def test_users_mostly_hit_their_favourite_genres() -> None:
    items = generate_catalog()
    catalog = _catalog_by_id(items)
    favourites = favourite_genres(seed=7, n_users=200)
    events = generate_events(items, seed=7, n_users=200, events_per_user=25)
    item_events = [e for e in events if e.item_id is not None]
    on_favourite = [
        e for e in item_events if catalog[e.item_id].categories[0] in favourites[e.user_id]
    ]
    assert 0.80 <= len(on_favourite) / len(item_events) <= 0.90
    for event in item_events:
        genres = set(catalog[event.item_id].categories)
        if event.type is EventType.DISLIKE:
            assert not genres & set(favourites[event.user_id])
    for event in events:
        if event.type is EventType.SEARCH:
            assert any(event.query in GENRES[g].queries for g in favourites[event.user_id])


def test_every_user_mostly_prefers_a_favourite() -> None:
    items = generate_catalog()
    catalog = _catalog_by_id(items)
    favourites = favourite_genres(seed=7, n_users=60)
    events = generate_events(items, seed=7, n_users=60, events_per_user=25)
    for user, genres in favourites.items():
        mine = [e for e in events if e.user_id == user and e.item_id is not None]
        hits = sum(catalog[e.item_id].categories[0] in genres for e in mine)
        assert hits / len(mine) >= 0.6, user


def test_events_work_with_a_custom_catalog() -> None:
    items = [Item(item_id="only", title="Only Item (2000)", categories=["Sci-Fi"])]
    events = generate_events(items, n_users=5, events_per_user=4)
    assert all(e.item_id in (None, "only") for e in events)


def test_empty_sizes() -> None:
    assert generate_catalog(items_per_genre=0) == []
    assert generate_events(generate_catalog(), n_users=0) == []
    assert generate_events([], n_users=0) == []
    assert generate_events(generate_catalog(), n_users=3, events_per_user=0) == []


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(min_value=-(2**31), max_value=2**31),
    items_per_genre=st.integers(min_value=1, max_value=12),
    n_users=st.integers(min_value=0, max_value=15),
    events_per_user=st.integers(min_value=0, max_value=12),
)
def test_invariants_hold_for_any_seed(
    seed: int, items_per_genre: int, n_users: int, events_per_user: int
) -> None:
    items = generate_catalog(seed=seed, items_per_genre=items_per_genre)
    events = generate_events(items, seed=seed, n_users=n_users, events_per_user=events_per_user)
    catalog = _catalog_by_id(items)
    assert len(catalog) == len(items)
    assert len({i.title for i in items}) == len(items)
    assert len({e.event_id for e in events}) == len(events) == n_users * events_per_user
    assert all(a.ts < b.ts for a, b in zip(events, events[1:]))
    assert all(isinstance(e, Event) for e in events)
    assert all(e.item_id in catalog for e in events if e.type is not EventType.SEARCH)
