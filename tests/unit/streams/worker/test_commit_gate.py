"""The commit gate: output acknowledged before offsets, and no commit at all once processing failed."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streams.worker.commit_gate import gate_commits


class Consumer:
    def __init__(self) -> None:
        self.committed: list[Any] = []

    async def _commit_offsets(self, offsets: Any, start_new_transaction: bool = True) -> bool:
        self.committed.append(offsets)
        return True


class Processor:
    def __init__(self, drain_error: Exception | None = None) -> None:
        self.failed: BaseException | None = None
        self.drained = 0
        self.drain_error = drain_error

    async def drain(self) -> None:
        self.drained += 1
        if self.drain_error is not None:
            raise self.drain_error

    def fail(self, exc: BaseException) -> None:
        self.failed = self.failed or exc


def test_commits_after_draining_and_never_after_a_failure() -> None:
    consumer, processor, stopped = Consumer(), Processor(), []
    gate_commits(consumer, processor, on_failure=stopped.append)
    assert asyncio.run(consumer._commit_offsets({"p0": 10})) is True
    assert processor.drained == 1 and consumer.committed == [{"p0": 10}]

    # The agent failed mid-batch: Faust has acked that batch, so its offsets must never be committed.
    processor.fail(RuntimeError("step raised"))
    assert asyncio.run(consumer._commit_offsets({"p0": 500})) is False
    assert consumer.committed == [{"p0": 10}] and processor.drained == 1


def test_a_drain_that_fails_latches_the_failure_and_stops_the_worker() -> None:
    consumer, stopped = Consumer(), []
    processor = Processor(drain_error=RuntimeError("3 messages not delivered"))
    gate_commits(consumer, processor, on_failure=stopped.append)
    assert asyncio.run(consumer._commit_offsets({"p1": 7})) is False
    assert consumer.committed == [] and isinstance(processor.failed, RuntimeError)
    assert [str(e) for e in stopped] == ["3 messages not delivered"]
    processor.drain_error = None
    assert asyncio.run(consumer._commit_offsets({"p1": 8})) is False, "the latch holds"


def test_installed_once_however_often_the_agent_starts() -> None:
    consumer, processor = Consumer(), Processor()
    gate_commits(consumer, processor, on_failure=lambda _: None)
    gate_commits(consumer, processor, on_failure=lambda _: None)
    asyncio.run(consumer._commit_offsets({}))
    assert processor.drained == 1, "one gate, one drain per commit"


@pytest.mark.parametrize("bad", [0, 3, 7])
def test_step_each_drops_only_the_event_that_fails_alone(bad: int) -> None:
    """The fallback after a batch's step keeps failing: the same states and lists as one step over
    the batch without the failing event."""
    from models.pipeline import Positioned
    from streams.worker.events_agent import step_each
    from tests.unit.models.test_recommender_step import EventType, HashEncoder, _ev, _recommender

    class Poisoned(HashEncoder):
        def encode(self, texts: Any) -> Any:
            if any("poison" in t for t in texts):
                raise RuntimeError("poisoned")
            return super().encode(texts)

    rec, _ = _recommender()
    rec.encoder = Poisoned()
    events = [_ev(f"e{n}", f"u{n % 3}", EventType.CLICK, f"i{n}", ts=n + 1) for n in range(8)]
    events[bad] = _ev(f"e{bad}", f"u{bad % 3}", EventType.SEARCH, ts=bad + 1, query="poison pill")
    batch = [Positioned(e, n) for n, e in enumerate(events)]
    with pytest.raises(RuntimeError):
        rec.step({}, batch)
    result, failures = step_each(rec, {}, batch)
    assert [(p.event.event_id, str(e)) for p, e in failures] == [(f"e{bad}", "poisoned")]
    clean = rec.step({}, [p for p in batch if p.event.event_id != f"e{bad}"])
    assert set(result.states) == set(clean.states)
    for user, state in clean.states.items():
        assert result.states[user].events_applied == state.events_applied
        assert result.states[user].applied_digest == state.applied_digest
        assert [s.item_id for s in result.recommendations[user]] == [s.item_id for s in clean.recommendations[user]]
    assert [e.event_id for e in result.applied] == [e.event_id for e in clean.applied]


def test_step_each_keeps_variants_and_judges_against_the_lists_from_before_the_batch() -> None:
    """Event by event, the merged result still names every user's variant (the published list needs it)
    and judges each event against the list the user had before the batch, as one step does."""
    from models.pipeline import Positioned, Recommender
    from models.variants import Experiment
    from streams.worker.events_agent import step_each
    from tests.unit.models.test_recommender_step import EventType, HashEncoder, _ev, _recommender

    base, _ = _recommender()
    experiment = Experiment.from_spec({"salt": "s", "variants": [
        {"name": "default", "share": 0.5}, {"name": "b", "share": 0.5, "params": {"w_content": 0.5}}]}, base.params)
    rec = Recommender(base.index, HashEncoder(), base.params, experiment=experiment)
    users = [f"u{n}" for n in range(6)]
    first = rec.step({}, [Positioned(_ev(f"f{n}", u, EventType.CLICK, "i0"), n) for n, u in enumerate(users)])
    batch = [Positioned(_ev(f"e{n}", users[n % 6], EventType.CLICK, f"i{1 + n % 5}", ts=10 + n), 10 + n)
             for n in range(12)]
    one, _ = step_each(rec, first.states, batch)
    whole = rec.step(first.states, batch)
    assert one.variants == whole.variants and set(one.variants) == set(users)
    assert sorted(one.online) == sorted(whole.online) and len(one.online) == 12
    assert {u: s.shown for u, s in one.states.items()} == {u: s.shown for u, s in whole.states.items()}
