"""Paired comparison of two runs over the same events: the difference, and an interval that resamples users."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.evaluation.paired import paired_hit_difference

K = 10


def _users(n_users: int, per_user: int) -> np.ndarray:
    return np.repeat([f"u{i}" for i in range(n_users)], per_user)


def test_identical_runs_differ_by_nothing() -> None:
    ranks = np.random.default_rng(0).integers(0, 15, size=500)
    got = paired_hit_difference(ranks, ranks, _users(50, 10), K)
    assert (got.diff, got.low, got.high, got.only_a, got.only_b) == (0.0, 0.0, 0.0, 0, 0)
    assert got.events == 500 and got.users == 50


def test_a_gain_spread_over_every_user_is_told_from_noise() -> None:
    rng = np.random.default_rng(1)
    a = np.where(rng.random(4_000) < 0.1, 3, 0)
    b = a.copy()
    b[::20] = 1  # every user gains on one of their twenty events
    got = paired_hit_difference(a, b, _users(200, 20), K)
    assert got.low > 0 and got.diff == pytest.approx(b.astype(bool).mean() - a.astype(bool).mean())


def test_a_gain_of_one_user_alone_is_not_taken_for_a_general_one() -> None:
    """An event-level test would call +0.009 here significant; by users it is one user's luck."""
    rng = np.random.default_rng(2)
    a = np.where(rng.random(2_000) < 0.1, 4, 0)
    b = a.copy()
    b[:20] = 2  # user u0's twenty events all hit in B
    got = paired_hit_difference(a, b, _users(100, 20), K)
    assert got.diff > 0.005 and got.low <= 0.0 < got.high


def test_ranks_beyond_k_are_misses() -> None:
    got = paired_hit_difference(np.array([5, 11, 0]), np.array([11, 5, 0]), np.array(["x", "y", "z"]), K)
    assert (got.a, got.b, got.only_a, got.only_b) == (1 / 3, 1 / 3, 1, 1)


def test_runs_of_different_events_are_refused() -> None:
    with pytest.raises(ValueError, match="scored different events"):
        paired_hit_difference(np.zeros(3), np.zeros(4), np.array(["a"] * 3), K)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 60), st.integers(1, 30), st.integers(0, 10**6))
def test_the_counts_and_rates_agree_and_the_interval_is_ordered(n_users: int, per_user: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = n_users * per_user
    a, b = rng.integers(0, 20, size=n), rng.integers(0, 20, size=n)
    got = paired_hit_difference(a, b, _users(n_users, per_user), K, rounds=300, seed=seed)
    assert got.only_b - got.only_a == round(got.diff * n)
    assert got.low <= got.high and -1.0 <= got.low and got.high <= 1.0
