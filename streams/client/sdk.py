"""recstream's Python client: send your app's events, receive recommendation lists.

    from streams.client import RecommendationSubscriber, RecstreamClient

    with RecstreamClient("kafka:9092") as recstream:      # flushes on exit; raises if Kafka refused any
        recstream.click("u1", "item-42")
        recstream.search("u1", "space opera")

    for rec in RecommendationSubscriber("kafka:9092", user_id="u1"):
        print(rec.items[0].item_id, rec.items[0].reason)

Events are checked by the same decoder the workers use (schema and limits), so an event the
client accepts is never dead-lettered for its content. They are keyed by user with the Java/Faust
partitioner, so each lands in the partition that holds the user's state.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, KafkaError, Message

from schemas.decode import InvalidMessage, decode_event
from schemas.records import Event, EventType, Recommendation
from streams.kafka.producing import make_producer, produce_when_room
from streams.kafka.watching import assign_topic, consumer_for
from streams.settings import Settings


class InvalidEvent(ValueError):
    """The event would be dead-lettered by the workers; the message gives the reason."""


class DeliveryFailed(RuntimeError):
    """Kafka did not take some events; `failures` lists them with their errors."""

    def __init__(self, failures: list[Delivery]) -> None:
        self.failures = failures
        first = failures[0]
        super().__init__(f"{len(failures)} event(s) not delivered (first: {first.event_id}: {first.error}); "
                         "check that Kafka is reachable and the events topic exists, then send them again")


@dataclass(frozen=True)
class Delivery:
    """Kafka's answer for one event: where it was stored, or why not."""

    event_id: str
    user_id: str
    error: str | None = None
    partition: int | None = None
    offset: int | None = None


def _settings(bootstrap: str | None, settings: Settings | None) -> Settings:
    if settings is not None:
        return settings
    return Settings(kafka_bootstrap=bootstrap) if bootstrap else Settings()


class RecstreamClient:
    """Produces events with confluent-kafka. Delivery reports arrive on `on_delivery` (from `poll`/`flush`);
    failed ones are kept in `failed` and raised by `flush`."""

    def __init__(
        self, bootstrap: str | None = None, *, settings: Settings | None = None,
        on_delivery: Callable[[Delivery], None] | None = None, **producer_config: str | int,
    ) -> None:
        """`producer_config`: librdkafka settings on top of recstream's (dots as in librdkafka, e.g.
        `**{"message.timeout.ms": 10000}`)."""
        self._settings = _settings(bootstrap, settings)
        self._producer = make_producer(self._settings, **producer_config)
        self._on_delivery = on_delivery
        self.failed: list[Delivery] = []

    # -- one method per event type --------------------------------------------------------
    def click(self, user_id: str, item_id: str, **kw: Any) -> str:
        return self.send_event(user_id, EventType.CLICK, item_id=item_id, **kw)

    def browse(self, user_id: str, item_id: str, **kw: Any) -> str:
        return self.send_event(user_id, EventType.BROWSE, item_id=item_id, **kw)

    def purchase(self, user_id: str, item_id: str, **kw: Any) -> str:
        return self.send_event(user_id, EventType.PURCHASE, item_id=item_id, **kw)

    def dislike(self, user_id: str, item_id: str, **kw: Any) -> str:
        return self.send_event(user_id, EventType.DISLIKE, item_id=item_id, **kw)

    def search(self, user_id: str, query: str, **kw: Any) -> str:
        return self.send_event(user_id, EventType.SEARCH, query=query, **kw)

    def erase(self, user_id: str, **kw: Any) -> str:
        """Ask the workers to forget the user (state and list); see "Erasing a user" in docs/architecture.md."""
        return self.send_event(user_id, EventType.ERASE, **kw)

    def send_event(
        self, user_id: str, type: EventType, *, item_id: str | None = None, query: str | None = None,
        ts: int | None = None, event_id: str | None = None,
    ) -> str:
        """Build, check and send one event; returns its event id (generated unless given)."""
        fields = {"event_id": event_id or uuid.uuid4().hex, "user_id": user_id, "type": type,
                  "item_id": item_id, "query": query, "ts": int(time.time() * 1000) if ts is None else ts}
        try:
            event = Event.model_validate({k: v for k, v in fields.items() if v is not None})
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'event'}: {e['msg']}" for e in exc.errors())
            raise InvalidEvent(f"invalid {type.value} event: {problems}") from None
        return self.send(event)

    def send(self, event: Event) -> str:
        """Check `event` as a worker would, then produce it keyed by user; returns its event id."""
        value = event.model_dump_json(exclude_none=True).encode()
        try:
            decode_event(value, self._settings.limits)
        except InvalidMessage as exc:
            raise InvalidEvent(f"event {event.event_id} would be dead-lettered ({exc.reason}): {exc.detail}") from None

        def report(err: KafkaError | None, msg: Message) -> None:
            delivery = Delivery(event.event_id, event.user_id, None if err is None else str(err),
                                msg.partition() if err is None else None, msg.offset() if err is None else None)
            if err is not None:
                self.failed.append(delivery)
            if self._on_delivery is not None:
                self._on_delivery(delivery)

        produce_when_room(self._producer, self._settings.topic_events, event.user_id.encode(), value,
                          on_delivery=report)
        self._producer.poll(0)
        return event.event_id

    def poll(self, timeout: float = 0.0) -> None:
        """Serve pending delivery reports."""
        self._producer.poll(timeout)

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every event sent so far is acknowledged; raise DeliveryFailed for any that was not."""
        left = self._producer.flush(timeout)
        failed, self.failed = self.failed, []
        if left:
            failed.append(Delivery("?", "?", f"{left} event(s) still unacknowledged after {timeout:.0f}s"))
        if failed:
            raise DeliveryFailed(failed)

    def close(self) -> None:
        self.flush()

    def __enter__(self) -> RecstreamClient:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self._producer.flush(5)


class RecommendationSubscriber:
    """Yields recommendation lists as workers publish them: every user's, or one user's (reading only
    that user's partition). Erased users' tombstones are skipped. Iterate, or call `poll`."""

    def __init__(
        self, bootstrap: str | None = None, *, settings: Settings | None = None, user_id: str | None = None,
        from_beginning: bool = False,
    ) -> None:
        self._settings = _settings(bootstrap, settings)
        self.user_id = user_id
        self._consumer = consumer_for(self._settings)
        assign_topic(self._consumer, self._settings.topic_recommendations,
                     OFFSET_BEGINNING if from_beginning else OFFSET_END, user_id)
        self._key = None if user_id is None else user_id.encode()

    def poll(self, timeout: float = 1.0) -> Recommendation | None:
        """The next list (None if none arrived within `timeout` seconds)."""
        deadline = time.monotonic() + timeout
        while True:
            msg = self._consumer.poll(max(0.0, min(0.2, deadline - time.monotonic())))
            if msg is not None and not msg.error() and msg.value() is not None:
                if self._key is None or msg.key() == self._key:
                    return Recommendation.model_validate_json(msg.value())
            if time.monotonic() >= deadline:
                return None

    def __iter__(self) -> Iterator[Recommendation]:
        while True:
            rec = self.poll(1.0)
            if rec is not None:
                yield rec

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> RecommendationSubscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
