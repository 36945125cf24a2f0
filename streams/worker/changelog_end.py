"""Where a changelog really ends, for Faust's table recovery.

Faust recovers a table partition by reading its changelog up to the end offset the broker reports,
then stops. Some brokers report the end as the base offset of the last produce batch + 1 while
serving the whole batch (the embedded Tansu does: after a batch of 5 at offsets 1-5 it reports 2).
A worker taking over a partition would then stop short of the last records its previous owner
wrote, and apply new events on top of stale state: those records' events are lost. It would also
refuse to recover a partition whose local copy is ahead of the reported end (ConsistencyError).

So after Faust asks for the ends, each is checked by reading from it: on Apache Kafka nothing is
readable past the high watermark and the end stands; where records are, the end moves past them.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from faust.tables.recovery import Recovery
from faust.types import TP

from streams.settings import Settings

_original = Recovery._build_highwaters


def readable_ends(settings: Settings, reported: Mapping[TP, int], idle_s: float = 0.3, timeout_s: float = 30.0) -> dict[TP, int]:
    """The offset after the last record readable from each partition, starting at its reported end."""
    ends = dict(reported)
    if not ends:
        return ends
    consumer = Consumer({
        **settings.confluent_config(),
        "group.id": f"recstream-end-check-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "fetch.wait.max.ms": 10,
    })
    try:
        consumer.assign([TopicPartition(tp.topic, tp.partition, max(0, end)) for tp, end in ends.items()])
        by_key = {(tp.topic, tp.partition): tp for tp in ends}
        deadline = time.monotonic() + timeout_s
        last_seen = time.monotonic()
        while time.monotonic() - last_seen < idle_s and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=1000, timeout=0.05):
                if msg.error():
                    continue
                tp = by_key[(msg.topic(), msg.partition())]
                ends[tp] = max(ends[tp], msg.offset() + 1)
                last_seen = time.monotonic()
        return ends
    finally:
        consumer.close()


def verify_changelog_ends(settings: Settings) -> None:
    """Make Faust's recovery use the verified ends (installed once per worker process)."""

    async def build_highwaters(self: Recovery, consumer: Any, tps: Any, destination: Any, title: str) -> None:
        await _original(self, consumer, tps, destination, title)
        # Faust keeps "end - 1" (the last offset); -1 when the partition is empty.
        reported = {tp: destination[tp] + 1 for tp in tps}
        ends = await asyncio.get_running_loop().run_in_executor(None, readable_ends, settings, reported)
        for tp, end in ends.items():
            if end > reported[tp]:
                self.log.info("changelog %s ends at %d, past the %d the broker reported", tp, end, reported[tp])
                destination[tp] = end - 1

    Recovery._build_highwaters = build_highwaters  # type: ignore[method-assign]
