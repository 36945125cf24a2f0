"""Intervals and tests for hit rates, checked against known values and by simulation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.evaluation.proportions import difference, wilson


def test_wilson_matches_the_textbook_value() -> None:
    # 81 of 263 (Newcombe 1998, example): 0.2553 to 0.3662.
    interval = wilson(81, 263)
    assert interval.low == pytest.approx(0.2553, abs=1e-4) and interval.high == pytest.approx(0.3662, abs=1e-4)


@given(st.integers(1, 5000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_holds_the_rate_and_stays_in_0_1(case: tuple[int, int]) -> None:
    hits, n = case
    interval = wilson(hits, n)
    assert 0.0 <= interval.low <= hits / n <= interval.high <= 1.0


def test_the_intervals_cover_the_true_rate_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(0)
    n, p = 2000, 0.12
    hits = rng.binomial(n, p, size=2000)
    covered = np.mean([wilson(int(h), n).low <= p <= wilson(int(h), n).high for h in hits])
    assert 0.93 <= covered <= 0.97
    other = rng.binomial(n, p, size=2000)
    false_alarms = np.mean([difference(int(a), n, int(b), n).p_value < 0.05 for a, b in zip(hits, other)])
    assert 0.03 <= false_alarms <= 0.07, "a test at 5% flags about 5% of equal pairs"


def test_a_real_difference_is_found_and_signed() -> None:
    d = difference(100, 1000, 150, 1000)
    assert d.diff == pytest.approx(0.05) and d.p_value < 0.001 and d.interval.low > 0
    assert difference(150, 1000, 100, 1000).interval.high < 0
    same = difference(0, 10, 0, 10)
    assert same.p_value == 1.0 and same.diff == 0.0
    with pytest.raises(ValueError):
        difference(0, 0, 1, 1)
