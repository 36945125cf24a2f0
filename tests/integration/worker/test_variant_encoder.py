"""An experiment between two encoders in a real worker: one variant names its own encoder folder.

The worker embeds the catalog a second time with the variant's encoder once the catalog has caught
up, ranks that variant's users with it and everyone else with its own, keeps both indexes in step
with later catalog changes, and at a restart loads both from disk instead of embedding again.
The variant's encoder is the bundled model with a fixed shift appended (sentence-transformers'
own Dense and Normalize modules): other vectors, another version, seconds to make.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from models.datasets.synthetic import generate_catalog
from models.encoder import bundled_model_path
from models.encoder_training import append_shift, save_tuned
from schemas.records import Event, EventType, Item
from streams.kafka.producing import publish_events, publish_items
from streams.kafka.watching import RecommendationWatcher
from streams.lab.reliability.checks import isolated_env
from streams.lab.stack import LocalStack

pytestmark = pytest.mark.integration

BASE_VERSION = "all-MiniLM-L6-v2"


def shifted_encoder(out: Path) -> Path:
    """The bundled model plus a fixed shift and a re-normalisation, saved as a versioned folder."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(bundled_model_path()), device="cpu")
    shift = np.random.default_rng(5).normal(size=model.get_embedding_dimension())
    append_shift(model, -0.3 * shift / np.linalg.norm(shift))
    return save_tuned(model, out, BASE_VERSION, {"note": "test encoder: a fixed shift"})


def test_a_variant_ranks_with_its_own_encoder_keeps_it_in_step_and_reloads_it(kafka_bootstrap: str,
                                                                              tmp_path: Path) -> None:
    folder = shifted_encoder(tmp_path / "encoders")
    variants = tmp_path / "variants.yaml"
    variants.write_text(f"salt: enc-test\nvariants:\n  - name: default\n    share: 0.5\n"
                        f"  - name: tuned\n    share: 0.5\n    encoder: {folder.relative_to(tmp_path)}\n")
    env = {**isolated_env(), "RECSTREAM_VARIANTS": str(variants), "RECSTREAM_ENCODER_THREADS": "2"}
    catalog = generate_catalog()
    with LocalStack(tmp_path / "stack", bootstrap=kafka_bootstrap, extra_env=env) as stack:
        settings = stack.settings()
        experiment = settings.experiment
        users = [f"enc-{n}" for n in range(16)]
        assert {experiment.variant_of(u).name for u in users} == {"default", "tuned"}
        publisher, worker = stack.start_worker_with_catalog(catalog, "variants")
        deadline = time.monotonic() + 180
        while worker.metric(f'recstream_encoder{{version="{folder.name}"}}') != 1.0:
            assert time.monotonic() < deadline, "the variant's catalog was never built"
            time.sleep(0.5)
        assert worker.metric("recstream_items_embedded_total") == 2 * len(catalog)

        # A new item after the build reaches both indexes: clicking it is no unknown item for anyone.
        fresh = Item(item_id="fresh-1", title="A brand new space opera", categories=["scifi"])
        publish_items(publisher, settings.topic_items, [fresh])
        publisher.flush()
        while worker.metric("recstream_index_items") != len(catalog) + 1:
            assert time.monotonic() < deadline, "the new item never reached the index"
            time.sleep(0.2)
        now = int(time.time() * 1000)
        events = [Event(event_id=f"e-{n}", user_id=user, type=EventType.CLICK,
                        item_id=(fresh if n % 2 else catalog[n]).item_id, ts=now + n) for n, user in enumerate(users)]
        with RecommendationWatcher(settings) as watcher:
            publish_events(publisher, settings.topic_events, events)
            publisher.flush()
            seen = {e.user_id: watcher.wait_for_trigger(e.event_id, timeout=60) for e in events}
        assert all(s is not None for s in seen.values()), "every event got its list"
        for user, record in seen.items():
            variant = experiment.variant_of(user).name
            assert record.value["variant"] == variant
            expected = folder.name if variant == "tuned" else BASE_VERSION
            assert record.value["model_version"].split("+", 1)[1] == expected, (user, record.value["model_version"])
        assert worker.metric("recstream_events_unknown_item_total") == 0.0
        log = (stack.root / "variants.log").read_text()
        assert f"variant 'tuned' ranks with encoder {folder.name}: {len(catalog)} items embedded" in log

        # A restart loads both indexes from disk: nothing is embedded, and the variant's users keep its encoder.
        worker.stop()
        worker.start().wait_ready(timeout=240)
        while worker.metric(f'recstream_encoder{{version="{folder.name}"}}') != 1.0:
            assert time.monotonic() < deadline + 240, "the variant's index was not loaded after the restart"
            time.sleep(0.5)
        assert worker.metric("recstream_items_embedded_total") == 0.0, "both saved indexes were reused"
        tuned = next(u for u in users if experiment.variant_of(u).name == "tuned")
        with RecommendationWatcher(settings) as watcher:
            publish_events(publisher, settings.topic_events, [Event(event_id="after-restart", user_id=tuned,
                                                                    type=EventType.CLICK, item_id="fresh-1",
                                                                    ts=now + 1_000)])
            publisher.flush()
            again = watcher.wait_for_trigger("after-restart", timeout=60)
        assert again is not None and again.value["model_version"].split("+", 1)[1] == folder.name
