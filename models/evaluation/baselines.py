"""The classic streaming baselines, in the same harness as recstream.

Each is the textbook version people actually run, updated event by event. They index the catalog
densely (item -> row) for speed; the co-occurrence matrix is catalog-squared, which is fine for
MovieLens-sized catalogs and refused (with a clear error) beyond `MAX_DENSE_ITEMS`.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Sequence

import numpy as np

from models.popularity import RecentPopularity
from schemas.records import Event

MAX_DENSE_ITEMS = 40_000
_NEG = np.float32(-np.inf)


class _Dense:
    """Shared plumbing: item ids <-> rows, and top-k over a dense score vector with exclusions."""

    name = "dense"

    def __init__(self, item_ids: Sequence[str]) -> None:
        self.ids = list(item_ids)
        self.row = {item: i for i, item in enumerate(self.ids)}

    def _top(self, scores: np.ndarray, k: int, exclude: set[str]) -> list[str]:
        scores = scores.astype(np.float32, copy=True)
        rows = [self.row[i] for i in exclude if i in self.row]
        scores[rows] = _NEG
        k = min(k, len(scores))
        part = np.argpartition(-scores, k - 1)[:k]
        part = part[np.argsort(-scores[part], kind="stable")]
        return [self.ids[r] for r in part if scores[r] > _NEG]


class RandomBaseline(_Dense):
    name = "random"
    key = "random"

    def __init__(self, item_ids: Sequence[str], seed: int = 0) -> None:
        super().__init__(item_ids)
        self._rng = np.random.default_rng(seed)

    def recommend(self, user_id: str, k: int, exclude: set[str]) -> list[str]:
        return self._top(self._rng.random(len(self.ids), dtype=np.float32), k, exclude)

    def learn(self, event: Event, seen: set[str]) -> None:
        pass


class AllTimePopularity(_Dense):
    name = "popularity (all time)"
    key = "popularity_all_time"

    def __init__(self, item_ids: Sequence[str]) -> None:
        super().__init__(item_ids)
        self._counts = np.zeros(len(self.ids), dtype=np.float32)

    def recommend(self, user_id: str, k: int, exclude: set[str]) -> list[str]:
        return self._top(self._counts, k, exclude)

    def learn(self, event: Event, seen: set[str]) -> None:
        if event.item_id in self.row:
            self._counts[self.row[event.item_id]] += 1


class RecentPopularityBaseline:
    """Most interacted items among the last `window` events (the exact sliding window)."""

    key = "popularity_recent"

    def __init__(self, window: int = 2_000) -> None:
        self.name = f"popularity (last {window:,} events)"
        self._pop = RecentPopularity(window)

    def recommend(self, user_id: str, k: int, exclude: set[str]) -> list[str]:
        return [item for item, _ in self._pop.top(k, exclude=exclude)]

    def learn(self, event: Event, seen: set[str]) -> None:
        if event.item_id is not None:
            self._pop.observe(event.item_id)


class CoOccurrence(_Dense):
    """Item-item co-occurrence within each user's last `window` items, cosine-normalised.

    score(c) = sum over the user's last `window` items a of C[a, c] / sqrt(n_a * n_c).
    """

    key = "cooccurrence"

    def __init__(self, item_ids: Sequence[str], window: int = 50) -> None:
        super().__init__(item_ids)
        if len(self.ids) > MAX_DENSE_ITEMS:
            raise ValueError(
                f"the co-occurrence baseline holds a dense {len(self.ids)}x{len(self.ids)} matrix; "
                f"catalogs over {MAX_DENSE_ITEMS:,} items are not supported (use a smaller dataset)"
            )
        self.name = f"co-occurrence (last {window} items)"
        self._window = window
        self._pairs = np.zeros((len(self.ids), len(self.ids)), dtype=np.float32)
        self._counts = np.zeros(len(self.ids), dtype=np.float32)
        self._recent: dict[str, deque[int]] = {}

    def recommend(self, user_id: str, k: int, exclude: set[str]) -> list[str]:
        recent = self._recent.get(user_id)
        if not recent:
            return []
        anchors = np.fromiter(recent, dtype=np.int64)
        inv_sqrt = 1.0 / np.sqrt(np.maximum(self._counts, 1.0))
        scores = (inv_sqrt[anchors] @ self._pairs[anchors]) * inv_sqrt
        return self._top(np.where(scores > 0, scores, _NEG), k, exclude)

    def learn(self, event: Event, seen: set[str]) -> None:
        r = self.row.get(event.item_id or "")
        if r is None:
            return
        recent = self._recent.setdefault(event.user_id, deque(maxlen=self._window))
        if recent:
            anchors = np.fromiter(set(recent) - {r}, dtype=np.int64)
            self._pairs[anchors, r] += 1.0
            self._pairs[r, anchors] += 1.0
        self._counts[r] += 1.0
        recent.append(r)


class ContentOnly(_Dense):
    """An exponential moving average of the user's item embeddings, ranked by exact cosine."""

    key = "content_only"

    def __init__(self, item_ids: Sequence[str], vectors: np.ndarray, ema: float = 0.3) -> None:
        super().__init__(item_ids)
        self.name = f"content-only (EMA {ema})"
        self._vectors = vectors.astype(np.float32)
        self._ema = ema
        self._users: dict[str, np.ndarray] = {}

    def recommend(self, user_id: str, k: int, exclude: set[str]) -> list[str]:
        u = self._users.get(user_id)
        if u is None:
            return []
        return self._top(self._vectors @ u, k, exclude)

    def learn(self, event: Event, seen: set[str]) -> None:
        r = self.row.get(event.item_id or "")
        if r is None:
            return
        v = self._vectors[r]
        u = self._users.get(event.user_id)
        self._users[event.user_id] = v.copy() if u is None else (1 - self._ema) * u + self._ema * v


class SessionKNN:
    """Streaming session-kNN: the items of the recent sessions that share the user's newest items.

    A session is a user's run of events with gaps under `session_gap_s`. For a request, every recent
    session holding one of the user's last `query_items` items is a candidate neighbour, its
    similarity the sum of the shared items' weights (newest item 1, older ones linearly less, as in
    V-SKNN) over √(session length); the `neighbours` most similar vote for their items with their
    similarity. Only the newest `sessions_per_item` sessions per item are kept, which keeps it
    streaming and favours recent behaviour.
    """

    key = "session_knn"

    def __init__(self, session_gap_s: float = 3_600.0, query_items: int = 10, sessions_per_item: int = 100,
                 neighbours: int = 50, session_items: int = 50) -> None:
        self.name = "session-kNN"
        self._gap_ms = session_gap_s * 1000.0
        self._neighbours = neighbours
        self._session_items = session_items
        self._sessions: list[list[str]] = []
        self._by_item: dict[str, deque[int]] = {}
        self._sessions_per_item = sessions_per_item
        self._current: dict[str, tuple[int, int]] = {}  # user -> (session id, ts of their last event)
        self._recent: dict[str, deque[str]] = {}
        self._query_items = query_items

    def recommend(self, user_id: str, k: int, exclude: set[str]) -> list[str]:
        recent = self._recent.get(user_id)
        if not recent:
            return []
        own = self._current[user_id][0]
        similarity: dict[int, float] = {}
        n = len(recent)
        for position, item in enumerate(recent):
            weight = (position + 1) / n
            for session in self._by_item.get(item, ()):
                if session != own:
                    similarity[session] = similarity.get(session, 0.0) + weight
        nearest = heapq.nlargest(self._neighbours,
                                 ((s / math.sqrt(len(self._sessions[i])), i) for i, s in similarity.items()))
        scores: dict[str, float] = {}
        for sim, session in nearest:
            for item in self._sessions[session]:
                scores[item] = scores.get(item, 0.0) + sim
        ranked = sorted(scores.items(), key=lambda pair: -pair[1])
        return [item for item, _ in ranked if item not in exclude][:k]

    def learn(self, event: Event, seen: set[str]) -> None:
        item = event.item_id
        if item is None:
            return
        session, last = self._current.get(event.user_id, (-1, -1))
        if session < 0 or event.ts - last > self._gap_ms:
            session = len(self._sessions)
            self._sessions.append([])
        self._current[event.user_id] = (session, event.ts)
        items = self._sessions[session]
        if item not in items:
            items.append(item)
            del items[: -self._session_items]
            holders = self._by_item.setdefault(item, deque(maxlen=self._sessions_per_item))
            holders.append(session)
        self._recent.setdefault(event.user_id, deque(maxlen=self._query_items)).append(item)
