"""Recent popularity over an exact sliding window of the last N interactions.

This is the "recent popularity" baseline of `recstream evaluate`: the textbook version people run.
recstream itself ranks with decayed popularity kept in models.covisitation, which every worker
applies from the shared co-visits topic, so it sees the whole stream rather than its partitions.
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
