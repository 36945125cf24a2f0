"""Integration fixtures: a real broker, real worker processes, real RocksDB.

The broker is, in order of preference: KAFKA_BOOTSTRAP_SERVERS when set, a testcontainers Kafka
when a Docker engine answers, else the embedded Tansu broker.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.broker import EmbeddedBroker, free_port
from streams.stack import LocalStack

pytestmark = pytest.mark.integration


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    elif _docker_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer() as kafka:
            yield kafka.get_bootstrap_server()
    else:
        log = tmp_path_factory.mktemp("broker") / "broker.log"
        with EmbeddedBroker(free_port(), log_file=log) as broker:
            yield broker.bootstrap


def isolated_env() -> dict[str, str]:
    """Own topics and consumer group per stack, so tests sharing one broker cannot see each other."""
    tag = uuid.uuid4().hex[:8]
    return {
        "RECSTREAM_APP_ID": f"recstream-test-{tag}",
        "RECSTREAM_TOPIC_EVENTS": f"t{tag}.events",
        "RECSTREAM_TOPIC_ITEMS": f"t{tag}.items",
        "RECSTREAM_TOPIC_RECOMMENDATIONS": f"t{tag}.recommendations",
        "RECSTREAM_TOPIC_COVISITS": f"t{tag}.covisits",
        "RECSTREAM_TOPIC_DEAD_LETTER": f"t{tag}.dead-letter",
        "RECSTREAM_LOG_LEVEL": "INFO",
    }


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    root: Path = tmp_path_factory.mktemp("stack")
    with LocalStack(root, bootstrap=kafka_bootstrap, extra_env=isolated_env()) as s:
        yield s
