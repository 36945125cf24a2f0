"""What a worker writes to Kafka besides state: recommendation lists and dead letters."""

from __future__ import annotations

import time
from typing import Any

import orjson

from models.ranking import Scored
from schemas.decode import InvalidMessage, dead_letter_value
from streams.worker import metrics
from streams.worker.batch_output import BatchOutput


class DeadLetters:
    """Every message that cannot be used goes here with its reason and original bytes; nothing is dropped.

    They go through the batch output, so they are acknowledged by Kafka before the offsets of the
    events they replace are committed (streams/worker/commit_gate.py): a dead letter is never lost.
    """

    def __init__(self, output: BatchOutput, topic: str) -> None:
        self.output = output
        self.topic = topic

    def send(
        self, error: InvalidMessage, key: bytes | None, value: bytes | None, topic: str, partition: int, offset: int
    ) -> None:
        envelope = dead_letter_value(error.reason, error.detail, value, topic=topic, partition=partition, offset=offset)
        self.output.produce(self.topic, key, envelope, headers=[("recstream-reason", error.reason.encode())])
        metrics.DEAD_LETTERED.labels(topic, error.reason).inc()


def recommendation_value(
    user_id: str, items: list[Scored], trigger_event_id: str, model_version: str, variant: str, shown: int | None = None
) -> bytes:
    """The published list, shaped by schemas/recommendation.schema.json: the first `shown` items (all
    by default) as `items`, the candidates behind them, for request filters, as `more`."""
    shown = len(items) if shown is None else shown
    doc: dict[str, Any] = {
        "user_id": user_id,
        "items": [{"item_id": s.item_id, "score": s.score, "reason": s.reason} for s in items[:shown]],
        "trigger_event_id": trigger_event_id,
        "generated_at": int(time.time() * 1000),
        "model_version": model_version,
        "variant": variant,
    }
    if len(items) > shown:
        doc["more"] = [{"item_id": s.item_id, "score": s.score, "reason": s.reason} for s in items[shown:]]
    return orjson.dumps(doc)
