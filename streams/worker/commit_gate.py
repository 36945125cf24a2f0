"""Output before offsets: Faust's consumer awaits our pending output before it commits.

The events agent no longer waits for its output at the end of every batch: a batch's lists and
changelog records are still on their way to Kafka when the next batch starts. What keeps that
safe is this gate. Faust commits the offsets of acknowledged events only after `drain()` has seen
every message produced for them acknowledged by Kafka, so a crash can cost re-processing, never
an event whose output was lost. Faust commits on its interval, on every rebalance (before
partitions move) and on shutdown; all three pass through `_commit_offsets`.

Faust acks the events of a batch its agent abandoned (take_events' `finally`), so after any
failure the gate refuses every commit: the worker stops and a restart redelivers from the last
offsets committed while everything was still applied.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

log = logging.getLogger(__name__)

# Exit status of a worker stopped by a failure (after Faust's own shutdown, or forced).
FAILED_EXIT = 3
# How long Faust's shutdown may take before the process is ended regardless.
STOP_GRACE_S = 20.0
# The failure that stopped this process's worker, if one did (streams.worker.main exits FAILED_EXIT).
stopped_by: list[BaseException] = []


class Drained(Protocol):
    failed: BaseException | None

    def drain(self) -> Awaitable[None]: ...

    def fail(self, exc: BaseException) -> None: ...


def gate_commits(consumer: Any, processor: Drained, on_failure: Callable[[BaseException], None]) -> None:
    """Make `consumer` await `processor.drain()` before every offset commit, and commit nothing
    once the processor has failed. Installed once per consumer, however often the agent starts."""
    if getattr(consumer, "_recstream_gated", False):
        return
    commit_offsets = consumer._commit_offsets  # the bound original

    async def drained_then_commit(offsets: Any, start_new_transaction: bool = True) -> bool:
        if processor.failed is None:
            try:
                await processor.drain()
            except Exception as exc:
                processor.fail(exc)
                on_failure(exc)
        if processor.failed is not None:
            log.warning("commit refused: events processing failed (%s); the batch will be redelivered",
                        type(processor.failed).__name__)
            return False
        return await commit_offsets(offsets, start_new_transaction=start_new_transaction)

    consumer._commit_offsets = drained_then_commit
    consumer._recstream_gated = True


def stop_worker(exc: BaseException) -> None:
    """Stop the worker after a failure: Faust's shutdown (whose commits the gate refuses), then exit
    with FAILED_EXIT; if the shutdown hangs, the process ends anyway after STOP_GRACE_S."""
    if stopped_by:
        return
    stopped_by.append(exc)
    asyncio.get_event_loop().call_later(STOP_GRACE_S, os._exit, FAILED_EXIT)
    os.kill(os.getpid(), signal.SIGTERM)
