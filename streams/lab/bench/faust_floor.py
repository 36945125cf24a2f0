"""The Faust floor: events/s a Faust agent that does nothing takes from the same backlog.

The worker is a Faust app (it owns partitions, recovers tables and commits through Faust), so every
event reaches it through Faust's consumer, conductor and stream. This measures that path alone, with
the worker's own Faust settings and batching and no work per event: no worker built on Faust can be
faster on this machine. `recstream bench` runs it beside the broker ceiling, in the same run.

Run as `python -m streams.lab.bench.faust_floor TOPIC COUNT OUT` with the worker's RECSTREAM_* settings
in the environment; it writes its figures as JSON to OUT (Faust takes over stdout).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import faust

from streams.lab.children import die_with_parent
from streams.settings import Settings
from streams.worker.credentials import faust_credentials
from streams.worker.faust_setup import faust_brokers, tune_faust


def measure(env: Mapping[str, str], topic: str, count: int, timeout: float = 300) -> dict[str, Any]:
    """Start the do-nothing agent in its own process, with a worker's environment, and read its figure."""
    with tempfile.TemporaryDirectory(prefix="recstream-faust-floor-") as tmp:
        out = Path(tmp) / "floor.json"
        done = subprocess.run([sys.executable, "-m", "streams.lab.bench.faust_floor", topic, str(count), str(out)],
                              env=dict(env), capture_output=True, text=True, timeout=timeout,
                              preexec_fn=die_with_parent(signal.SIGKILL))
        if done.returncode != 0 or not out.exists():
            raise RuntimeError(f"the Faust floor run failed (exit {done.returncode}): {done.stderr[-2000:]}")
        return json.loads(out.read_text())


def _run(topic_name: str, count: int, out: Path) -> None:
    settings = Settings()
    tune_faust(settings)
    app = faust.App(
        f"recstream-faust-floor-{uuid.uuid4().hex[:8]}",
        broker=faust_brokers(settings),
        datadir=str(out.parent / "faust"),
        web_enabled=False,
        autodiscover=False,
        consumer_auto_offset_reset="earliest",
        broker_credentials=faust_credentials(settings),
    )
    topic = app.topic(topic_name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    seen = {"events": 0, "batches": 0}
    clock: dict[str, float] = {}

    @app.agent(topic)
    async def nothing(stream: faust.StreamT) -> None:
        async for batch in stream.take_events(settings.batch_max, within=settings.batch_wait_ms / 1000.0):
            seen["events"] += len(batch)
            if not clock:  # the clock starts once the first batch is in: it times the batches after it
                clock["start"], clock["cpu"], clock["first"] = time.perf_counter(), time.process_time(), len(batch)
                continue
            seen["batches"] += 1
            if seen["events"] >= count:
                timed = seen["events"] - clock["first"]
                seconds = time.perf_counter() - clock["start"]
                out.write_text(json.dumps({
                    "events": timed, "seconds": round(seconds, 2),
                    "events_per_s": round(timed / seconds, 1),
                    "mean_batch": round(timed / seen["batches"], 1),
                    "cpu_us_per_event": round(1e6 * (time.process_time() - clock["cpu"]) / timed, 1),
                }))
                os._exit(0)  # the figure is out; a clean Faust shutdown takes seconds and measures nothing

    sys.argv = [sys.argv[0], "worker", "--loglevel", "warn", "--without-web"]
    app.main()


if __name__ == "__main__":
    _run(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))
