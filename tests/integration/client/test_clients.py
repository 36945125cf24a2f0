"""Producing events and reading lists as an app does: the README quickstart, the Python client, kcat (docs/interfaces.md)."""

from __future__ import annotations

import ast
import json
import os
import pathlib
import re
import sys
import subprocess
import time

import confluent_kafka
import pytest

from models.datasets.synthetic import generate_catalog
from schemas.records import Recommendation
from streams.client import Delivery, RecommendationSubscriber, RecstreamClient
from streams.kafka.topics import partition_for
from streams.kafka.watching import RecommendationWatcher
from streams.lab.stack import LocalStack, WorkerProcess

pytestmark = pytest.mark.integration
CATALOG = generate_catalog()
ROOT = pathlib.Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def worker(stack: LocalStack) -> WorkerProcess:
    return stack.start_worker_with_catalog(CATALOG, "clients")[1]


def wait_for(subscriber: RecommendationSubscriber, trigger: str, timeout: float = 60) -> Recommendation:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rec = subscriber.poll(1.0)
        if rec is not None and rec.trigger_event_id == trigger:
            return rec
    raise AssertionError(f"no list triggered by {trigger} within {timeout}s")


def test_the_python_client_sends_every_event_type_and_the_subscriber_yields_lists(stack: LocalStack, worker) -> None:
    settings = stack.settings()
    deliveries: list[Delivery] = []
    with RecommendationSubscriber(settings=settings, user_id="sdk-user") as mine, \
            RecommendationSubscriber(settings=settings) as everyone:
        with RecstreamClient(settings=settings, on_delivery=deliveries.append) as client:
            ids = [client.browse("sdk-user", CATALOG[0].item_id), client.click("sdk-user", CATALOG[1].item_id),
                   client.purchase("sdk-user", CATALOG[2].item_id), client.dislike("sdk-user", CATALOG[3].item_id),
                   client.search("sdk-user", "a quiet western"), client.click("other-user", CATALOG[4].item_id)]
        assert all(d.error is None for d in deliveries), [d.error for d in deliveries if d.error]
        # Delivery reports of different partitions may interleave (and librdkafka does not promise their
        # order); what the workers rely on is each user's events stored in the order they were sent.
        assert sorted(d.event_id for d in deliveries) == sorted(ids)
        mine_stored = sorted((d.offset, d.event_id) for d in deliveries if d.user_id == "sdk-user")
        assert [event_id for _, event_id in mine_stored] == ids[:5], "a user's events kept their order"
        assert {d.partition for d in deliveries if d.user_id == "sdk-user"} == {
            partition_for("sdk-user", settings.events_partitions)}
        rec = wait_for(mine, ids[4])
        assert rec.user_id == "sdk-user" and rec.items and all(i.reason for i in rec.items)
        assert CATALOG[2].item_id not in {i.item_id for i in rec.items}, "purchased items are not recommended"
        seen = {wait_for(everyone, ids[5]).user_id}
        assert seen == {"other-user"}


def kcat_env(tmp: pathlib.Path) -> dict[str, str]:
    """kcat with the confluent-kafka wheel's librdkafka, as `make kcat-lib` sets it up."""
    libs = pathlib.Path(confluent_kafka.__file__).parent.parent / "confluent_kafka.libs"
    (tmp / "librdkafka.so.1").symlink_to(next(libs.glob("librdkafka*.so*")))
    return {**os.environ, "LD_LIBRARY_PATH": str(tmp)}


def test_kcat_produces_events_and_reads_lists_as_the_readme_shows(stack: LocalStack, worker, tmp_path,
                                                                   require_tool) -> None:
    require_tool("kcat")
    settings = stack.settings()
    env = kcat_env(tmp_path)
    event = {"event_id": "k-1", "user_id": "kcat-user", "type": "purchase", "item_id": CATALOG[5].item_id,
             "ts": int(time.time() * 1000)}
    with RecommendationWatcher(settings) as watcher:
        subprocess.run(["kcat", "-P", "-b", settings.kafka_bootstrap, "-t", settings.topic_events, "-K", "|",
                        "-X", "partitioner=murmur2_random"], input=f"kcat-user|{json.dumps(event)}\n",
                       text=True, env=env, check=True, timeout=60)
        assert watcher.wait_for_trigger("k-1", timeout=60) is not None
    assert (worker.metric("recstream_events_rekeyed_total") or 0) == 0, "kcat's partitioner matched the worker's"
    out = subprocess.run(["kcat", "-C", "-b", settings.kafka_bootstrap, "-t", settings.topic_recommendations,
                          "-o", "beginning", "-e", "-q", "-f", "%k\t%s\n"], env=env, capture_output=True,
                         text=True, check=True, timeout=60).stdout
    lists = [json.loads(v) for k, v in (line.split("\t", 1) for line in out.splitlines()) if k == "kcat-user"]
    assert lists and lists[-1]["trigger_event_id"] == "k-1"
    assert CATALOG[5].item_id not in {i["item_id"] for i in lists[-1]["items"]}


def readme_quickstart() -> str:
    """The Python block of the README's Quickstart section, as a newcomer would copy it."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the README's Quickstart has one Python block"
    return blocks[0]


def test_the_readme_quickstart_sends_events_and_reads_the_list_from_the_topic_and_over_http(
    stack: LocalStack, worker
) -> None:
    code = readme_quickstart()
    assert "127.0.0.1:9092" in code and "127.0.0.1:6066" in code, "the quickstart uses the default addresses"
    code = code.replace("127.0.0.1:9092", stack.settings().kafka_bootstrap).replace(
        "127.0.0.1:6066", f"127.0.0.1:{worker.http_port}")
    # The stack names its own topics (RECSTREAM_TOPIC_*): the block reads them from the environment, as an app would.
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT,
                            env={**os.environ, **stack.extra_env})
    assert result.returncode == 0, result.stderr
    from_topic, over_http = result.stdout.strip().splitlines()
    top3 = ast.literal_eval(from_topic)  # the block prints Python reprs: a list of (item id, reason) pairs
    assert len(top3) == 3 and all(reason for _, reason in top3)
    first = ast.literal_eval(over_http)
    assert first["item_id"] == top3[0][0] and first["reason"] == top3[0][1], "HTTP serves the list the topic carried"
