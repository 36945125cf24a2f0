"""Faust's message delivery without a task per message: the same results, waits and cancellations."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from mode import Service
from mode.utils.locks import Event

from streams.worker.faust_delivery import wait_first


class FakeConsumer(Service):
    """What the fast path reads of a Faust consumer: its flow-suspension event, stopped and crashed."""

    def __init__(self) -> None:
        super().__init__()
        self.suspend_flow = Event()


def run(body: Any) -> Any:
    """Run `body(consumer, tasks)` in a fresh loop that counts the tasks created while it runs."""

    async def main() -> Any:
        loop = asyncio.get_running_loop()
        created: list[asyncio.Task[Any]] = []

        def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
            task = asyncio.Task(coro, loop=loop, **kwargs)
            created.append(task)
            return task

        loop.set_task_factory(factory)
        return await body(FakeConsumer(), created)

    return asyncio.run(main())


def test_a_delivery_that_needs_no_wait_is_done_in_place() -> None:
    async def body(consumer: FakeConsumer, created: list[Any]) -> Any:
        delivered: list[str] = []

        async def on_message(value: str) -> str:
            delivered.append(value)
            return value.upper()

        result = await wait_first(consumer, on_message("m"), consumer.suspend_flow.wait())
        return delivered, result, len(created)

    delivered, result, tasks = run(body)
    assert delivered == ["m"]
    assert result.results == ["M"] and not result.stopped
    assert tasks == 0  # the original creates four


def test_a_delivery_that_waits_is_finished_by_the_original_wait() -> None:
    async def body(consumer: FakeConsumer, created: list[Any]) -> Any:
        room = asyncio.get_running_loop().create_future()
        steps: list[str] = []

        async def on_message() -> str:
            steps.append("before")
            await room  # a full stream queue
            steps.append("after")
            return "delivered"

        asyncio.get_running_loop().call_later(0.01, room.set_result, None)
        result = await wait_first(consumer, on_message(), consumer.suspend_flow.wait())
        return steps, result, len(created)

    steps, result, tasks = run(body)
    assert steps == ["before", "after"]  # stepped once in place, never re-run from the start
    assert "delivered" in result.results
    assert tasks >= 2


def test_a_flow_suspension_cuts_a_waiting_delivery_short_as_before() -> None:
    async def body(consumer: FakeConsumer, created: list[Any]) -> Any:
        never = asyncio.get_running_loop().create_future()
        outcome: list[str] = []

        async def on_message() -> None:
            try:
                await never
            except asyncio.CancelledError:
                outcome.append("cancelled")
                raise

        asyncio.get_running_loop().call_later(0.01, consumer.suspend_flow.set)
        result = await wait_first(consumer, on_message(), consumer.suspend_flow.wait())
        await asyncio.sleep(0)  # let the cancellation reach the delivery
        return outcome, result

    outcome, result = run(body)
    assert outcome == ["cancelled"]
    assert result.results == [True]  # only the suspension finished


def test_while_flow_is_suspended_nothing_is_stepped_in_place() -> None:
    async def body(consumer: FakeConsumer, created: list[Any]) -> Any:
        consumer.suspend_flow.set()

        async def on_message() -> str:
            return "late"

        await wait_first(consumer, on_message(), consumer.suspend_flow.wait())
        return len(created)

    assert run(body) >= 4  # the original path: a task for each awaitable, stopped and crashed


@pytest.mark.parametrize("waits_first", [False, True])
def test_an_error_in_the_delivery_reaches_the_consumer(waits_first: bool) -> None:
    async def body(consumer: FakeConsumer, created: list[Any]) -> Any:
        async def on_message() -> None:
            if waits_first:
                await asyncio.sleep(0.001)
            raise ValueError("bad message")

        await wait_first(consumer, on_message(), consumer.suspend_flow.wait())

    with pytest.raises(ValueError, match="bad message"):
        run(body)
