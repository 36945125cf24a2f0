"""The Python client refuses what workers would dead-letter and surfaces failed deliveries."""

from __future__ import annotations

import pytest

from streams.client import DeliveryFailed, InvalidEvent, RecstreamClient
from streams.lab.broker import free_port


def dead_end_client(**kw: object) -> RecstreamClient:
    """A client whose broker never answers, so every delivery fails after a second."""
    return RecstreamClient(f"127.0.0.1:{free_port()}", **{"message.timeout.ms": 1000, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize("send", [
    lambda c: c.click("u1", ""),
    lambda c: c.search("u1", ""),
    lambda c: c.search("u1", "x" * 5_000),
    lambda c: c.purchase("", "item-1"),
    lambda c: c.click("u1", "item-1", ts=-5),
    lambda c: c.click("u1", "item-1", ts=4_000_000_000_000),
])
def test_events_a_worker_would_dead_letter_are_refused_with_one_readable_line(send) -> None:
    delivered = []
    client = dead_end_client(on_delivery=delivered.append)
    with pytest.raises(InvalidEvent) as err:
        send(client)
    assert "\n" not in str(err.value)
    # Anything produced would fail its delivery within the 1 s message timeout, and be reported.
    client.flush(5)
    assert delivered == [], "nothing was produced"


def test_failed_deliveries_are_reported_and_raised() -> None:
    seen = []
    client = dead_end_client(on_delivery=seen.append)
    event_id = client.click("u1", "item-1")
    with pytest.raises(DeliveryFailed) as err:
        client.flush(10)
    assert [f.event_id for f in err.value.failures] == [event_id]
    assert [d.event_id for d in seen] == [event_id] and seen[0].error
    assert event_id in str(err.value)
