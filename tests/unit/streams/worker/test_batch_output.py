"""The worker's producer (streams.worker.batch_output): a full librdkafka queue never blocks the loop."""

from __future__ import annotations

import asyncio
import threading

from streams.settings import Settings
from streams.worker.batch_output import BatchOutput

# Nothing listens there: librdkafka's queue fills and never drains.
UNREACHABLE = Settings(kafka_bootstrap="127.0.0.1:1")


def test_producing_into_a_full_queue_returns_at_once_and_keeps_the_messages_in_order() -> None:
    """The old path retried `produce` with `poll(0.01)` until there was room, on the event loop: with a
    broker that does not take messages, the loop (heartbeats, reads, the read API) stopped for good."""
    output = BatchOutput(UNREACHABLE, max_queued=5)
    done = threading.Event()

    def produce_all() -> None:
        for i in range(50):
            output.produce("t", b"k", b"%d" % i, partition=0)
        done.set()

    threading.Thread(target=produce_all, daemon=True).start()
    assert done.wait(5.0), "produce blocked on a full queue"
    assert output.waiting == 45
    # What waits is handed over in order, never ahead of an older message.
    assert [value for _, _, value, _ in output._waiting] == [b"%d" % i for i in range(5, 50)]
    output.close(timeout_s=0.1)


def test_flush_waits_for_room_without_stopping_the_loop() -> None:
    async def main() -> int:
        output = BatchOutput(UNREACHABLE, max_queued=5)
        for i in range(20):
            output.produce("t", b"k", b"%d" % i)
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        try:
            await asyncio.wait_for(output.flush(), timeout=0.5)  # the broker never answers
        except asyncio.TimeoutError:
            pass
        ticker.cancel()
        output.close(timeout_s=0.1)
        return ticks

    assert asyncio.run(main()) >= 20  # the loop ran the whole time flush waited
