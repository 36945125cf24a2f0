"""What every Faust app of recstream shares: the broker URLs and the changes to Faust's consumer.

The worker and the bench's Faust floor (streams/lab/bench/faust_floor.py) both call these, so the
floor measures Faust exactly as the worker runs it.
"""

from __future__ import annotations

from streams.settings import Settings
from streams.worker.contiguous_fetch import read_without_holes
from streams.worker.faust_delivery import deliver_without_tasks
from streams.worker.faust_fetch import set_fetch_max_wait
from streams.worker.resume_after_seek import resume_after_seek


def faust_brokers(settings: Settings) -> list[str]:
    """RECSTREAM_KAFKA_BOOTSTRAP (host:port[,host:port]) as Faust's broker URLs."""
    return [f"kafka://{hp.strip()}" for hp in settings.kafka_bootstrap.split(",") if hp.strip()]


def tune_faust(settings: Settings) -> None:
    """Short fetch waits, task-free message delivery, assigned partitions fetched only once sought, and
    reads without holes, for every Faust consumer created from now on."""
    set_fetch_max_wait(settings.fetch_max_wait_ms)
    deliver_without_tasks()
    resume_after_seek()
    read_without_holes()
