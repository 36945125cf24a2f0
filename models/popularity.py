"""Recent popularity: what the last N interactions were about.

It answers for users with no usable taste yet (cold start, or only unknown items) and fills lists
that filters left short. Each worker counts the events it sees; with several workers each count
is a sample of the whole stream, which is enough for a fallback.
"""

from __future__ import annotations

from collections import Counter, deque
from typing import Container


class RecentPopularity:
    def __init__(self, window: int = 2_000) -> None:
        if window <= 0:
            raise ValueError("popularity window must be positive")
        self._window: deque[str] = deque()
        self._counts: Counter[str] = Counter()
        self._size = window

    def observe(self, item_id: str) -> None:
        self._window.append(item_id)
        self._counts[item_id] += 1
        if len(self._window) > self._size:
            old = self._window.popleft()
            left = self._counts[old] - 1
            if left:
                self._counts[old] = left
            else:
                del self._counts[old]

    def forget(self, item_id: str) -> None:
        """Deleted items must stop being suggested at once, not after they age out of the window."""
        if self._counts.pop(item_id, None) is not None:
            # Drop its window entries too, or their eviction later would count it back in (negatively).
            self._window = deque(x for x in self._window if x != item_id)

    def top(self, n: int, exclude: Container[str] = ()) -> list[tuple[str, int]]:
        if n <= 0:
            return []
        out: list[tuple[str, int]] = []
        for item_id, count in self._counts.most_common():
            if item_id in exclude:
                continue
            out.append((item_id, count))
            if len(out) == n:
                break
        return out

    def __len__(self) -> int:
        return len(self._counts)
