"""Partitions without a committed offset are read from their start, whatever was fetched before.

When a worker is assigned partitions, Faust recovers its tables and, while it does, may already
fetch events; it then drops those buffered events and seeks every partition to its committed
offset. aiokafka's `seek_to_committed` only seeks when the committed offset is above 0, so a
partition nobody has committed yet (a new consumer group reading a backlog) stays wherever the
early fetch left it, and the events fetched and dropped there are never read. (This was one
suspect when a new group restoring a populated table lost events; it did not remove that loss on
its own, see the known issues in docs/operations.md, but its semantics are right either way.) Seeking such
partitions to their beginning is what `consumer_auto_offset_reset="earliest"` promises anyway;
events read twice are recognised by their offsets in the users' state.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

log = logging.getLogger(__name__)
_original = AIOKafkaConsumerThread.seek_to_committed


def seek_uncommitted_to_start() -> None:
    """Install once per worker process, before the app starts."""

    async def seek_to_committed(self: AIOKafkaConsumerThread) -> Mapping[Any, int]:
        committed = await _original(self)
        uncommitted = [tp for tp, offset in committed.items() if not offset]  # None, or 0 (nothing read yet)
        if uncommitted:
            log.info("partitions without a committed offset are read from their start",
                     extra={"partitions": sorted(f"{tp.topic}:{tp.partition}" for tp in uncommitted)})
            await self.call_thread(self._ensure_consumer().seek_to_beginning, *uncommitted)
        return committed

    AIOKafkaConsumerThread.seek_to_committed = seek_to_committed  # type: ignore[method-assign]
