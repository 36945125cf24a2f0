"""Hand each fetched message to its stream without four asyncio tasks per message.

Faust's consumer delivers every message with `await self.wait_first(callback(message),
self.suspend_flow.wait())`, and mode's `wait_first` wraps each of those, plus the consumer's
stopped and crashed events, in a task, then waits on all four. The callback is the conductor's
`on_message`, which puts the message on its streams' queues: nearly always done at once, without
ever waiting. On this machine a Faust agent that does nothing took about 4,500 events/s that way
and 8,300-9,100/s with this change (a one-off comparison, two runs each); `recstream bench`
measures the installed path as `faust_floor_events_per_s`, and paired worker runs gained 14-26%.

So, only in the consumer, and only while no flow suspension, stop or crash is under way: the
callback is stepped once, in the consumer's own task. If it finishes, that is the whole delivery,
as it would have been inside `wait_first`. If it has to wait (a stream's queue is full, which is
the backpressure), the rest of it goes to the original `wait_first` exactly as before, so a flow
suspension (a rebalance) still cuts it short there.

Done in place, a delivery never gives the loop back, and the consumer hands over a whole fetch (up
to a thousand messages, ~0.1 ms each) in one go: a stall of everything else on the loop. So the
fast path yields once it has run for a slice (streams/worker/model_access.py) since it last did.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from typing import Any

from faust.transport.consumer import Consumer
from mode.services import WaitResults

from streams.worker.model_access import Slicer

_original_wait_first = Consumer.wait_first
_slicer = Slicer()


class _Resumed:
    """Awaiting this continues a coroutine that was already stepped once and yielded `pending`.

    Whatever the enclosing task sends or throws (a future's wake-up, a cancellation) goes on to
    the coroutine, as it would have if the task had run the coroutine from its start.
    """

    def __init__(self, coro: Coroutine[Any, Any, Any], pending: Any) -> None:
        self._coro = coro
        self._pending = pending

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, value = self._coro, self._pending
        while True:
            try:
                sent = yield value
            except BaseException as exc:  # noqa: BLE001 - handed to the coroutine, which decides
                step = coro.throw
                arg: Any = exc
            else:
                step = coro.send
                arg = sent
            try:
                value = step(arg)
            except StopIteration as stop:
                return stop.value


async def _rest_of(coro: Coroutine[Any, Any, Any], pending: Any) -> Any:
    return await _Resumed(coro, pending)


async def wait_first(self: Any, *coros: Any, timeout: Any = None) -> WaitResults:
    """`Service.wait_first` for a consumer's delivery call; anything else goes to the original."""
    if (
        len(coros) != 2
        or not asyncio.iscoroutine(coros[0])
        or self.suspend_flow.is_set()
        or self._stopped.is_set()
        or self._crashed.is_set()
    ):
        return await _original_wait_first(self, *coros, timeout=timeout)
    delivery, suspended = coros
    try:
        pending = delivery.send(None)
    except BaseException as exc:  # noqa: BLE001 - finished (StopIteration) or failed: either way, done here
        if asyncio.iscoroutine(suspended):
            suspended.close()  # never started: closing it keeps Python from warning that it was never awaited
        if isinstance(exc, StopIteration):
            if _slicer.due():
                await _slicer.pause()
            return WaitResults([delivery], [exc.value], False)
        raise
    return await _original_wait_first(self, _rest_of(delivery, pending), suspended, timeout=timeout)


def deliver_without_tasks() -> None:
    """Install the fast path for every Faust consumer (idempotent)."""
    Consumer.wait_first = wait_first  # type: ignore[method-assign]
