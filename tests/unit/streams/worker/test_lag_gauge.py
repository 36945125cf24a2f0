"""The consumer-lag gauge: owned partitions report end minus position; a partition that moved away reads 0."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from faust.types import TP

from streams.worker import metrics
from streams.worker.events_agent import EventsProcessor


def lag(topic: str, partition: int) -> float:
    return metrics.CONSUMER_LAG.labels(topic, str(partition))._value.get()


def test_a_partition_that_moved_away_stops_counting_here() -> None:
    topic = "lag-gauge-test"
    processor = SimpleNamespace(positions={TP(topic, 0): 10, TP(topic, 1): 20})

    async def ends(*tps: TP) -> dict[TP, int]:
        return {tp: 100 for tp in tps}

    asyncio.run(EventsProcessor.report_lag(processor, ends, {0, 1}))  # type: ignore[arg-type]
    assert (lag(topic, 0), lag(topic, 1)) == (90, 80)
    # Partition 1 moves to another worker; its end keeps growing there, but not in this worker's gauge.
    asyncio.run(EventsProcessor.report_lag(processor, ends, {0}))  # type: ignore[arg-type]
    assert (lag(topic, 0), lag(topic, 1)) == (90, 0)
    assert set(processor.positions) == {TP(topic, 0)}
