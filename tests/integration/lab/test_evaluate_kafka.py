"""`recstream evaluate --through-kafka`: the lists a real worker publishes score like the in-process replay."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.catalog import Catalog
from models.datasets.synthetic import generate_catalog, generate_events
from models.encoder import SentenceEncoder
from models.evaluation.prequential import evaluate
from models.evaluation.recstream_model import RecstreamModel
from models.index import ItemIndex
from models.params import CoreParams
from streams.lab.evaluate_kafka import compare_through_kafka
from streams.settings import Settings

pytestmark = pytest.mark.integration

K = 10


def test_published_lists_score_like_the_in_process_replay(kafka_bootstrap: str, tmp_path: Path) -> None:
    items = generate_catalog()
    events = generate_events(items)
    encoder = SentenceEncoder(threads=2)
    index = ItemIndex(encoder.dim)
    Catalog(index, encoder).ingest(items)
    settings = Settings()
    # The worker's own configuration: its list length, only purchases and dislikes excluded.
    in_process = evaluate(RecstreamModel(index, encoder, CoreParams(top_k=settings.top_k), published=True), events, K)
    assert in_process.metrics[f"hit@{K}"] > 0.1, "the synthetic stream has learnable taste: a real signal to compare"

    result = compare_through_kafka(
        settings, items, events, in_process, K, tolerance=0.03, timeout=300, bootstrap=kafka_bootstrap, root=tmp_path
    )
    # One event per batch: every event produced its own list, none was lost or coalesced.
    assert result["lists_received"] == len(events)
    assert result["agrees"], result
