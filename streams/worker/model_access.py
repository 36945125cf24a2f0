"""The models thread: where the core's shared models (item index, co-visitation) are read and written.

Everything in a worker shares one asyncio loop: Faust's consumer and heartbeats, the events agent,
the catalog and co-visit readers, the read API. A batch's step is ~1 ms of pure Python and numpy
per event for users of a busy site, so a batch of 500 held the loop for half a second; applying a
fetch of co-visits (~0.4 ms a record) and upserting a fetch of items into the HNSW graph held it
for a fifth of a second each.

All of that now runs in one thread of its own, one call at a time: the step, the co-visits
applied, the items upserted, the index saved. One thread, so the models need no locks and every
reader sees them whole; calls taking turns, so a replay of co-visits does not stop the step for
long. The loop keeps what touches Faust, RocksDB tables and the producer.

The thread shares the GIL with the loop, so it does not make the work cheaper: what it buys is
that the loop gets the GIL back every switch interval instead of after the work.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

# How long a loop-side task may run before it lets the others have the loop (see Slicer).
LOOP_SLICE_S = 0.002
# How long the models thread may hold the GIL before the loop can take it back (Python's default is
# 5 ms; the loop asks for it after every select and every call that released it).
SWITCH_INTERVAL_S = 0.001


class ModelAccess:
    def __init__(self) -> None:
        self._turn = asyncio.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recstream-models")

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """`fn(*args)` in the models thread, after the calls queued before it.

        The turn ends when the thread is done, not when the caller is: a caller cancelled (the
        worker stopping, a rebalance) must not let the next call in while the thread still runs.
        """
        await self._turn.acquire()
        try:
            running = asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        except BaseException:
            self._turn.release()
            raise
        running.add_done_callback(self._done)
        return await asyncio.shield(running)

    def _done(self, running: asyncio.Future[object]) -> None:
        self._turn.release()
        if not running.cancelled():
            running.exception()  # retrieved here too, for when the caller was cancelled and never sees it

    def close(self) -> None:
        self._executor.shutdown(wait=True)


class Slicer:
    """Tells a task on the loop when it has run for a slice, so that it yields:

        slicer = Slicer()
        for record in records:
            apply(record)
            if slicer.due():
                await slicer.pause()
    """

    def __init__(self, slice_s: float = LOOP_SLICE_S) -> None:
        self.slice_s = slice_s
        self._since = time.perf_counter()

    def start(self) -> None:
        """A new slice begins now."""
        self._since = time.perf_counter()

    def due(self) -> bool:
        return time.perf_counter() - self._since >= self.slice_s

    async def pause(self) -> None:
        """Let every other task on the loop run once, then begin a new slice."""
        await asyncio.sleep(0)
        self.start()
