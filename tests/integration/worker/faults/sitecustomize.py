"""Faults injected into a real worker process, for tests/integration/worker/test_faults.py.

A test puts this folder on the worker's PYTHONPATH, so Python imports it at start-up, and names
the faults in RECSTREAM_TEST_FAULTS (comma-separated). Production code has no fault hooks: these
patch the real classes from outside, the way a broken model, a bad disk or a crash would hit them.
Each once-only fault leaves a marker file in RECSTREAM_TEST_FAULT_DIR, so a restarted worker
runs clean.

- poison_query:   SentenceEncoder.encode raises for any text containing "poison" (every time)
- flaky_encoder:  the first 2 encode calls that embed a query raise ("Already borrowed")
- refuse_output:  the first flush after events were processed reports a delivery error
- kill_after_rekey: at the first offset commit after events were re-sent to their user's
                  partition, wait until the re-sends are in Kafka, then kill -9 (before committing)
- drop_tail:      the first time a fetch holds the newest event of a partition, that event is dropped
                  before Faust sees it, as Faust drops records around rebalances: no later record
                  shows the hole, so only the fetch watchdog can get it read
"""

from __future__ import annotations

import os

FAULTS = set(filter(None, os.environ.get("RECSTREAM_TEST_FAULTS", "").split(",")))
MARKERS = os.environ.get("RECSTREAM_TEST_FAULT_DIR", "/tmp")


def _once(name: str) -> bool:
    """True the first time in any process of this test (a marker file remembers)."""
    path = os.path.join(MARKERS, f"fault-{name}.done")
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def _patch_encoder() -> None:
    from models import encoder

    original = encoder.SentenceEncoder.encode
    flaky_left = [2]

    def encode(self, texts):  # type: ignore[no-untyped-def]
        if "poison_query" in FAULTS and any("poison" in t for t in texts):
            raise RuntimeError("injected fault: this text breaks the encoder")
        if "flaky_encoder" in FAULTS and any(t.startswith("query:") for t in texts) and flaky_left[0] > 0:
            flaky_left[0] -= 1
            raise RuntimeError("Already borrowed (injected)")
        return original(self, texts)

    encoder.SentenceEncoder.encode = encode


def _patch_output() -> None:
    from confluent_kafka import KafkaError

    from streams.worker import batch_output, metrics

    original = batch_output.BatchOutput.flush

    async def flush(self):  # type: ignore[no-untyped-def]
        applied = sum(s.value for m in metrics.EVENTS_IN.collect() for s in m.samples if s.name.endswith("_total"))
        if applied > 0 and _once("refuse_output"):
            self._failed.append(KafkaError(KafkaError._MSG_TIMED_OUT, "injected: delivery refused", fatal=False))
        return await original(self)

    batch_output.BatchOutput.flush = flush


def _patch_commit() -> None:
    import asyncio
    import signal

    from streams.worker import commit_gate, metrics

    original = commit_gate.gate_commits

    def gate_commits(consumer, *args, **kwargs):  # type: ignore[no-untyped-def]
        original(consumer, *args, **kwargs)
        inner = consumer._commit_offsets

        async def commit(offsets, start_new_transaction=True):  # type: ignore[no-untyped-def]
            if metrics.EVENTS_REKEYED._value.get() > 0 and _once("kill_after_rekey"):
                await asyncio.sleep(1.0)  # the re-sends reach Kafka; the source offsets stay uncommitted
                os.kill(os.getpid(), signal.SIGKILL)
            return await inner(offsets, start_new_transaction=start_new_transaction)

        consumer._commit_offsets = commit

    commit_gate.gate_commits = gate_commits


def _patch_fetch() -> None:
    from faust.transport.consumer import Consumer

    original = Consumer.getmany
    topic = os.environ.get("RECSTREAM_TOPIC_EVENTS", "events")

    async def getmany(self, timeout):  # type: ignore[no-untyped-def]
        async for tp, message in original(self, timeout):
            if tp.topic == topic and message.offset == (self.highwater(tp) or 0) - 1 and _once("drop_tail"):
                continue
            yield tp, message

    Consumer.getmany = getmany


if FAULTS & {"poison_query", "flaky_encoder"}:
    _patch_encoder()
if "refuse_output" in FAULTS:
    _patch_output()
if "kill_after_rekey" in FAULTS:
    _patch_commit()
if "drop_tail" in FAULTS:
    _patch_fetch()
