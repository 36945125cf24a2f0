"""The changelog end Faust's recovery uses is where records really end, whatever the broker reports."""

from __future__ import annotations

import uuid

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from faust.types import TP

from streams.settings import Settings
from streams.worker.changelog_end import readable_ends


def test_readable_ends_cover_every_record_of_the_last_batch(kafka_bootstrap: str) -> None:
    settings = Settings(kafka_bootstrap=kafka_bootstrap)
    topic = f"end-check-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(timeout=30)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 50})
    for n in (1, 5):  # a single record, then one batch of five: offsets 0..5 in partition 0
        for _ in range(n):
            producer.produce(topic, b"v", partition=0)
        producer.flush(30)
    ends = readable_ends(settings, {TP(topic, 0): 1, TP(topic, 1): 0})
    assert ends == {TP(topic, 0): 6, TP(topic, 1): 0}
    # Reading from the true end finds nothing more, and an end is never moved backwards.
    assert readable_ends(settings, {TP(topic, 0): 6}) == {TP(topic, 0): 6}
