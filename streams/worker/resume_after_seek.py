"""Assigned stream partitions start fetching only once they are sought and the streams flow again.

When recovery ends, Faust resumes the assigned stream partitions, then awaits the seek to their
committed offsets, then resumes the streams' flow, which clears every stream queue. Between the
first step and the last the consumer already fetches and delivers: records that reach a queue in
that window are cleared unprocessed while Faust's read offset moves past them, so the next record
looks like the far side of a hole and Faust acks the cleared ones (streams/worker/contiguous_fetch.py
has the trace). In the scale-out test one run in three lost 50-357 events this way.

So inside the two methods that end recovery (`Recovery._resume_streams`, `on_recovery_completed`)
the resume of stream partitions is held back until the consumer's flow resumes, which Faust does
right after resuming the streams' flow, with no await in between: nothing is fetched for those
partitions before their seek, and nothing fetched afterwards lands in a queue that is then cleared.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from functools import wraps
from typing import Any

from faust.tables.recovery import Recovery
from faust.transport.consumer import Consumer
from faust.types import TP

_original_resume_partitions = Consumer.resume_partitions
_original_resume_flow = Consumer.resume_flow
_HELD = "_recstream_held_resume"  # consumer attribute: the partitions held back, while a recovery ends


def resume_partitions(self: Consumer, tps: Iterable[TP]) -> None:
    held: set[TP] | None = self.__dict__.get(_HELD)
    if held is None:
        _original_resume_partitions(self, tps)
    else:
        held.update(tps)


def resume_flow(self: Consumer) -> None:
    _original_resume_flow(self)
    held: set[TP] | None = self.__dict__.pop(_HELD, None)
    if held:
        _original_resume_partitions(self, held)


def holding_resumes(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Run a Recovery method with stream-partition resumes held until the consumer's flow resumes
    (and, should the method end before that, when it ends, as Faust would have resumed them)."""

    @wraps(method)
    async def run(self: Recovery, *args: Any, **kwargs: Any) -> Any:
        consumer = self.app.consumer
        consumer.__dict__[_HELD] = set()
        try:
            return await method(self, *args, **kwargs)
        finally:
            held = consumer.__dict__.pop(_HELD, None)
            if held:
                _original_resume_partitions(consumer, held)

    run.__recstream_holding__ = True  # type: ignore[attr-defined]
    return run


def resume_after_seek() -> None:
    """Install once per process (idempotent)."""
    Consumer.resume_partitions = resume_partitions  # type: ignore[method-assign]
    Consumer.resume_flow = resume_flow  # type: ignore[method-assign]
    for name in ("_resume_streams", "on_recovery_completed"):
        method = getattr(Recovery, name)
        if not getattr(method, "__recstream_holding__", False):
            setattr(Recovery, name, holding_resumes(method))
