"""Output before offsets: Faust's consumer awaits our pending output before it commits.

The events agent no longer waits for its output at the end of every batch: a batch's lists and
changelog records are still on their way to Kafka when the next batch starts. What keeps that
safe is this gate. Faust commits the offsets of acknowledged events only after `drain()` has seen
every message produced for them acknowledged by Kafka, so a crash can cost re-processing, never
an event whose output was lost. Faust commits on its interval, on every rebalance (before
partitions move) and on shutdown; all three pass through `_commit_offsets`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any


def gate_commits(consumer: Any, drain: Callable[[], Awaitable[None]]) -> None:
    """Make `consumer` await `drain()` before every offset commit."""
    commit_offsets = consumer._commit_offsets  # the bound original

    async def drained_then_commit(offsets: Any, start_new_transaction: bool = True) -> bool:
        await drain()
        return await commit_offsets(offsets, start_new_transaction=start_new_transaction)

    consumer._commit_offsets = drained_then_commit
