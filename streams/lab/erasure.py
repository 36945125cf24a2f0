"""`recstream users erase`: send a user's erase event and wait for the worker to confirm it.

The confirmation is the tombstone the owning worker publishes for the user's key on the
recommendations topic, after it deleted the user's state row (a changelog tombstone too).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from schemas.records import Event, EventType
from streams.kafka.producing import Publisher, make_producer, publish_event
from streams.kafka.watching import RecommendationWatcher
from streams.settings import Settings


@dataclass(frozen=True)
class Erasure:
    user_id: str
    event_id: str
    # Seconds from the erase event being in Kafka (acknowledged) until its tombstone was read; None
    # without --wait. Connecting a new producer comes before and is not counted.
    confirmed_after_s: float | None


def erase_event(user_id: str) -> Event:
    return Event(event_id=f"erase-{uuid.uuid4().hex}", user_id=user_id, type=EventType.ERASE, ts=int(time.time() * 1000))


def erase_user(settings: Settings, user_id: str, wait_s: float) -> Erasure:
    """Send the erase event; with `wait_s` > 0, wait that long for the worker's tombstone.

    Raises TimeoutError when no tombstone came: the event is in Kafka and will be applied when a
    worker owns the user's partition, but nothing has been erased yet.
    """
    event = erase_event(user_id)
    publisher = Publisher(make_producer(settings))
    if wait_s <= 0:
        publish_event(publisher, settings.topic_events, event)
        publisher.flush()
        return Erasure(user_id, event.event_id, None)
    with RecommendationWatcher(settings) as watcher:
        publish_event(publisher, settings.topic_events, event)
        publisher.flush()
        in_kafka = time.time()
        seen = watcher.wait_for_tombstone(user_id, timeout=wait_s)
    if seen is None:
        raise TimeoutError(
            f"the erase event for user {user_id!r} is in {settings.topic_events}, but no worker confirmed it "
            f"within {wait_s:.0f}s; is a worker running? It will be applied when one is"
        )
    return Erasure(user_id, event.event_id, max(0.0, seen - in_kafka))
