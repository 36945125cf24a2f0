"""The models thread (streams.worker.model_access): the loop keeps running while a batch is stepped,
calls take turns in order, and a cancelled caller's call still finishes before the next one starts."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from streams.worker.model_access import ModelAccess, Slicer


async def _ticks(stop: asyncio.Event, gaps: list[float], every_s: float = 0.002) -> None:
    """Records how late a timer due every `every_s` runs: the loop's stalls."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        due = loop.time() + every_s
        await asyncio.sleep(every_s)
        gaps.append(loop.time() - due)


def _busy(seconds: float) -> str:
    """Pure Python work that holds the GIL, like a batch's step."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        sum(range(200))
    return threading.current_thread().name


def test_a_long_step_runs_in_the_models_thread_and_the_loop_keeps_ticking() -> None:
    async def main() -> tuple[str, list[float]]:
        models, stop, gaps = ModelAccess(), asyncio.Event(), []
        ticker = asyncio.create_task(_ticks(stop, gaps))
        thread = await models.run(_busy, 0.5)
        stop.set()
        await ticker
        models.close()
        return thread, gaps

    thread, gaps = asyncio.run(main())
    assert thread.startswith("recstream-models")
    # On the loop, the timer would have waited the whole 0.5 s; beside the thread it waits for the GIL
    # at most a switch interval, with room here for a loaded machine.
    assert len(gaps) > 20 and max(gaps) < 0.1, max(gaps)


def test_a_cancelled_callers_call_finishes_before_the_next_one_starts() -> None:
    events: list[str] = []

    def step() -> None:
        events.append("step begins")
        time.sleep(0.2)
        events.append("step ends")

    async def main() -> None:
        models = ModelAccess()
        caller = asyncio.create_task(models.run(step))
        await asyncio.sleep(0.05)
        caller.cancel()  # a rebalance or shutdown cancels the agent mid-batch
        with pytest.raises(asyncio.CancelledError):
            await caller
        await models.run(events.append, "co-visits applied")
        models.close()

    asyncio.run(main())
    assert events == ["step begins", "step ends", "co-visits applied"]


def test_calls_take_turns_in_the_order_they_were_made() -> None:
    order: list[str] = []

    def slow(name: str) -> None:
        time.sleep(0.02)
        order.append(name)

    async def main() -> None:
        models = ModelAccess()
        await asyncio.gather(*(models.run(slow, name) for name in "abcde"))
        models.close()

    asyncio.run(main())
    assert order == list("abcde")


def test_an_error_reaches_its_caller_and_the_next_call_still_runs() -> None:
    def broken() -> None:
        raise ValueError("bad batch")

    async def main() -> int:
        models = ModelAccess()
        with pytest.raises(ValueError, match="bad batch"):
            await models.run(broken)
        after = await models.run(len, "next")
        models.close()
        return after

    assert asyncio.run(main()) == 4


def test_a_slicer_is_due_after_its_slice_and_starts_again_after_a_pause() -> None:
    async def main() -> None:
        slicer = Slicer(slice_s=0.01)
        assert not slicer.due()
        time.sleep(0.012)
        assert slicer.due()
        await slicer.pause()
        assert not slicer.due()

    asyncio.run(main())
