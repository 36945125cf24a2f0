"""The list cache serves the agent's lists at once and reads a partition it takes over from the topic first."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from streams.kafka.topics import TopicSpec, ensure_topics, partition_for
from streams.lab.stack import LocalStack
from streams.settings import Settings
from streams.worker.list_cache import ListCache, Lookup

pytestmark = pytest.mark.integration

PARTITIONS = 4


def user_in(partition: int, n: int) -> str:
    """The n-th user id that the partitioner puts in `partition`."""
    found = [u for i in range(400) if partition_for(u := f"lc-user-{i}", PARTITIONS) == partition]
    return found[n]


def publish(settings: Settings, lists: dict[str, bytes | None]) -> None:
    producer = Producer(settings.confluent_config())
    for user, value in lists.items():
        producer.produce(settings.topic_recommendations, key=user.encode(), value=value,
                         partition=partition_for(user, PARTITIONS))
    assert producer.flush(30) == 0


async def until(cache: ListCache, done: Callable[[], bool], watch: Callable[[], None] = lambda: None) -> None:
    deadline = time.monotonic() + 30
    while not done():
        watch()
        assert time.monotonic() < deadline, "the list cache did not catch up within 30 s"
        await asyncio.sleep(0.01)


def test_the_cache_serves_owned_partitions_only_and_only_once_read_whole(stack: LocalStack, tmp_path) -> None:
    settings = stack.settings().model_copy(update={
        "topic_recommendations": "lc-recommendations", "data_dir": tmp_path, "worker_id": "lc"})
    ensure_topics(AdminClient(settings.confluent_config()),
                  [TopicSpec(settings.topic_recommendations, PARTITIONS, {"cleanup.policy": "compact"})])
    a0, b0, a1, a2 = user_in(0, 0), user_in(0, 1), user_in(1, 0), user_in(2, 0)
    # Older lists first: only the newest of each user may be served; b0 was erased (a tombstone).
    publish(settings, {a0: b'{"v":"old"}', b0: b'{"v":"b"}', a1: b'{"v":"1"}', a2: b'{"v":"2"}'})
    # Enough lists in between that partition 0 takes several reads: a cache serving it before the
    # last one would answer a0's old list and b0's erased one.
    publish(settings, {f"lc-filler-{i}": b'{"v":"%s"}' % (b"f" * 1000) for i in range(24_000)
                       if partition_for(f"lc-filler-{i}", PARTITIONS) == 0})
    publish(settings, {a0: b'{"v":"new"}', b0: None})
    owned = {0, 1}

    def never_stale(user: str, latest: bytes) -> Callable[[], None]:
        """While a partition is taken over and read from the start, its users are 'not owned' or
        'catching up', never absent or served an older list."""
        def check() -> None:
            found, value = cache.lookup(user)
            assert found is not Lookup.ABSENT, f"{user} answered absent before their partition was read whole"
            assert found is not Lookup.FOUND or value == latest, f"{user} served an older list: {value!r}"
        return check

    async def scenario() -> None:
        await cache.start()
        try:
            await until(cache, cache.caught_up, never_stale(a0, b'{"v":"new"}'))
            assert cache.lookup(a0) == (Lookup.FOUND, b'{"v":"new"}')
            assert cache.lookup(b0) == (Lookup.ABSENT, None)
            assert cache.lookup(a1) == (Lookup.FOUND, b'{"v":"1"}')
            assert cache.lookup(a2) == (Lookup.NOT_OWNED, None)

            cache.write([(1, a1.encode(), b'{"v":"1b"}')])  # the agent's lists are served at once
            assert cache.lookup(a1) == (Lookup.FOUND, b'{"v":"1b"}')

            owned.clear()
            owned.update({1, 2})  # partition 0 moves away, 2 arrives, 1 stays
            # The agent writes a2's list before partition 2 is read: newer than the topic's, so it stays.
            cache.write([(2, a2.encode(), b'{"v":"local"}')])
            await until(cache, lambda: cache.caught_up() and cache.lookup(a0)[0] is Lookup.NOT_OWNED,
                        never_stale(a2, b'{"v":"local"}'))
            assert cache.lookup(a2) == (Lookup.FOUND, b'{"v":"local"}')
            assert cache.lookup(a1) == (Lookup.FOUND, b'{"v":"1b"}')

            publish(settings, {b0: b'{"v":"b2"}'})
            owned.add(0)  # back again: read whole once more, with what changed meanwhile
            await until(cache, lambda: cache.caught_up() and cache.lookup(b0)[0] is not Lookup.NOT_OWNED,
                        never_stale(b0, b'{"v":"b2"}'))
            assert cache.lookup(b0) == (Lookup.FOUND, b'{"v":"b2"}')
            assert cache.lookup(a0) == (Lookup.FOUND, b'{"v":"new"}')
        finally:
            await cache.stop()

    loop = asyncio.new_event_loop()
    try:
        cache = ListCache(settings, PARTITIONS, lambda: set(owned), loop=loop)
        loop.run_until_complete(scenario())
    finally:
        loop.close()
