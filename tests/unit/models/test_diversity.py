"""Diversity (maximal marginal relevance): off by default, and when on, near-duplicates give way."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.covisitation import CoVisit, CoVisitation
from models.index import ItemIndex
from models.interest import UserState
from models.params import CoreParams
from models.ranking import recommend_many

DIM = 8


def two_clusters() -> tuple[ItemIndex, CoVisitation]:
    """i0-i4 nearly the same item, i5-i9 nearly another; popularity falls from i0 to i9."""
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=DIM), rng.normal(size=DIM)
    index = ItemIndex(DIM, capacity=8)
    for n in range(10):
        v = (a if n < 5 else b) + 0.01 * rng.normal(size=DIM)
        index.upsert(f"i{n}", f"Title {n}", [], f"h{n}", (v / np.linalg.norm(v)).astype(np.float32))
    covis = CoVisitation(CoreParams())
    for n in range(10):
        for t in range(20 - n):
            covis.apply(CoVisit(f"i{n}", 1_000 + t, ()))
    return index, covis


def listed(lam: float, k: int = 4) -> list[str]:
    index, covis = two_clusters()
    params = CoreParams(top_k=k, w_covis=0.0, w_content=0.0, w_fresh=0.0, w_content_led=0.0, diversity_lambda=lam)
    return [s.item_id for s in recommend_many([UserState.empty(DIM)], index, params, covis)[0]]


def test_off_by_default_and_at_zero_the_list_is_by_score() -> None:
    assert CoreParams().diversity_lambda == 0.0
    assert listed(0.0) == ["i0", "i1", "i2", "i3"]


def test_near_duplicates_give_way_to_the_other_cluster() -> None:
    # The other cluster's best comes second instead of sixth; then, each cluster covered, score decides.
    assert listed(0.5) == ["i0", "i5", "i1", "i2"]
    assert listed(0.0, 6)[5] == "i5"


@settings(max_examples=20, deadline=None)
@given(st.floats(0.01, 1.0), st.integers(1, 10))
def test_the_best_item_leads_and_the_list_keeps_its_length(lam: float, k: int) -> None:
    items = listed(lam, k)
    assert items[0] == "i0" and len(items) == len(set(items)) == k


@pytest.mark.parametrize("lam", [0.3, 0.6, 0.9])
def test_more_lambda_never_makes_the_list_less_diverse(lam: float) -> None:
    index, _ = two_clusters()

    def spread(items: list[str]) -> float:
        v = index.vectors(items)
        s = v @ v.T
        return 1.0 - (s.sum() - np.trace(s)) / (len(items) * (len(items) - 1))

    assert spread(listed(lam, 6)) >= spread(listed(0.0, 6))
