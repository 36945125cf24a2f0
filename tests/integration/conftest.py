"""Integration fixtures: a real broker, real worker processes, real RocksDB.

The broker is, in order of preference: KAFKA_BOOTSTRAP_SERVERS when set, a testcontainers Kafka
when a Docker engine answers, else the embedded Tansu broker.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.lab.broker import EmbeddedBroker, free_port
from streams.lab.reliability.checks import isolated_env
from streams.lab.stack import LocalStack

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


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    root: Path = tmp_path_factory.mktemp("stack")
    with LocalStack(root, bootstrap=kafka_bootstrap, extra_env=isolated_env()) as s:
        yield s
