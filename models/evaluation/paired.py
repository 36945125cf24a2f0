"""Two runs over the same events, compared event by event: is a difference in hit@k more than noise?

Two evaluations of the same stream score the same warm events, so their difference can be judged
on the events where they disagree, not on two rates each with its own noise. Events of one user
are not independent (a model that reads one user's taste right hits again and again), so the
interval resamples users, not events: each bootstrap round draws users with replacement and
recomputes the difference of the two hit rates over the drawn users' events.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ROUNDS = 2_000
# Bootstrap rounds drawn at once: a (rounds x users) weight matrix, bounded for large user counts.
CELLS_PER_CHUNK = 4_000_000


@dataclass(frozen=True)
class PairedDifference:
    """hit@k of run A and run B over the same events, B - A, and a 95% user-bootstrap interval."""

    events: int
    users: int
    a: float
    b: float
    low: float
    high: float
    only_a: int  # events A hit and B missed
    only_b: int

    @property
    def diff(self) -> float:
        return self.b - self.a


def paired_hit_difference(
    ranks_a: np.ndarray, ranks_b: np.ndarray, users: np.ndarray, k: int, rounds: int = ROUNDS, seed: int = 0,
) -> PairedDifference:
    """Compare two runs' ranks (0: miss, else 1-based) of the same warm events, whose users are `users`."""
    ranks_a, ranks_b, users = np.asarray(ranks_a), np.asarray(ranks_b), np.asarray(users)
    if not (ranks_a.shape == ranks_b.shape == users.shape) or ranks_a.ndim != 1:
        raise ValueError(f"the runs scored different events ({len(ranks_a)} and {len(ranks_b)} ranks, "
                         f"{len(users)} users): compare runs of the same data, fraction and --score-from")
    if len(users) == 0:
        raise ValueError("no scored events to compare")
    hit_a = ((ranks_a > 0) & (ranks_a <= k)).astype(np.float64)
    hit_b = ((ranks_b > 0) & (ranks_b <= k)).astype(np.float64)
    _, user_of = np.unique(users, return_inverse=True)
    n_users = int(user_of.max()) + 1
    gain = np.bincount(user_of, weights=hit_b - hit_a, minlength=n_users)
    count = np.bincount(user_of, minlength=n_users).astype(np.float64)
    diffs = _bootstrap(gain, count, rounds, np.random.default_rng(seed))
    low, high = np.quantile(diffs, [0.025, 0.975])
    return PairedDifference(events=len(users), users=n_users, a=float(hit_a.mean()), b=float(hit_b.mean()),
                            low=float(low), high=float(high), only_a=int((hit_a > hit_b).sum()),
                            only_b=int((hit_b > hit_a).sum()))


def _bootstrap(gain: np.ndarray, count: np.ndarray, rounds: int, rng: np.random.Generator) -> np.ndarray:
    """Per round: users drawn with replacement (multinomial weights), the drawn users' summed gain over
    their summed events."""
    n = len(gain)
    per_chunk = max(1, CELLS_PER_CHUNK // n)
    out = []
    for start in range(0, rounds, per_chunk):
        weights = rng.multinomial(n, np.full(n, 1.0 / n), size=min(per_chunk, rounds - start)).astype(np.float64)
        out.append((weights @ gain) / np.maximum(weights @ count, 1.0))
    return np.concatenate(out)
