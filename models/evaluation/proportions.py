"""Hit rates as proportions: a confidence interval for one, and a test of the difference of two.

For `recstream experiments report`: each variant's online hit@k is hits out of judged events.
Events of one user are not independent, so with few heavy users the intervals are optimistic; the
report says so, and a minimum number of events guards the worst of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


def wilson(hits: int, n: int, z: float = Z95) -> Interval:
    """The Wilson score interval for hits/n: stays inside [0, 1] and behaves at rates near 0."""
    if n <= 0:
        return Interval(0.0, 1.0)
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # At 0 or n hits the bound is exactly 0 or 1; rounding would leave it a hair off.
    low = 0.0 if hits == 0 else max(0.0, min(p, centre - half))
    high = 1.0 if hits == n else min(1.0, max(p, centre + half))
    return Interval(low, high)


@dataclass(frozen=True)
class Difference:
    """rate_b - rate_a, its 95% interval (unpooled) and the two-sided p-value (pooled z-test)."""

    diff: float
    interval: Interval
    p_value: float


def difference(hits_a: int, n_a: int, hits_b: int, n_b: int, z: float = Z95) -> Difference:
    if n_a <= 0 or n_b <= 0:
        raise ValueError("both groups need at least one event")
    p_a, p_b = hits_a / n_a, hits_b / n_b
    diff = p_b - p_a
    se = math.sqrt(p_a * (1 - p_a) / n_a + p_b * (1 - p_b) / n_b)
    pooled = (hits_a + hits_b) / (n_a + n_b)
    se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    if se_pooled == 0:
        p_value = 1.0 if diff == 0 else 0.0
    else:
        p_value = math.erfc(abs(diff) / se_pooled / math.sqrt(2))
    return Difference(diff, Interval(diff - z * se, diff + z * se), p_value)
