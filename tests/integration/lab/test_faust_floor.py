"""The bench's Faust floor: a do-nothing Faust agent, in its own process, takes every message of a topic."""

from __future__ import annotations

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from streams.kafka.producing import make_producer
from streams.lab.bench import faust_floor
from streams.lab.broker import free_port
from streams.lab.stack import LocalStack

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # ~35 s, most of it Faust joining its group
MESSAGES = 3_000


def test_the_floor_counts_a_whole_backlog_and_times_it(stack: LocalStack) -> None:
    settings = stack.settings()
    topic = "faust-floor-test"
    admin = AdminClient(settings.confluent_config())  # held: a dropped client cancels its pending futures
    admin.create_topics([NewTopic(topic, 4, 1)])[topic].result(timeout=30)
    producer = make_producer(settings)
    for i in range(MESSAGES):
        producer.produce(topic, key=b"u%d" % (i % 97), value=b'{"n": %d}' % i, partition=i % 4)
        producer.poll(0)
    assert producer.flush(30) == 0

    floor = faust_floor.measure(stack.worker_env("floor-test", free_port(), 0), topic, MESSAGES, timeout=180)

    # The first batch starts the clock, so it is not in the timed count; everything after it is.
    assert MESSAGES - 500 <= floor["events"] <= MESSAGES
    assert floor["events_per_s"] > 0 and floor["seconds"] > 0
    assert floor["mean_batch"] >= 1
