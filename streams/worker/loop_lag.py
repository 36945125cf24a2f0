"""How long the worker's event loop is held: a timer due every 0.1 s, and how late it runs.

Everything in a worker shares one asyncio loop: Faust's consumer, heartbeats, the events agent, the
catalog and co-visit readers, the read API. Anything that runs long without yielding (a big batch,
a store save, a scan of a table) delays all of them, and shows here as lateness.
"""

from __future__ import annotations

import asyncio

from mode import Service

from streams.worker import metrics

INTERVAL_S = 0.1


class LoopLagMonitor(Service):
    @Service.task
    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.should_stop:
            due = loop.time() + INTERVAL_S
            await asyncio.sleep(INTERVAL_S)
            metrics.LOOP_LAG.observe(max(0.0, loop.time() - due))
