"""A fine-tuned encoder rolled out to a running worker: trained from the topics, switched live, kept at restart.

`recstream encoder train --from-topics` fine-tunes MiniLM on the pairs of a synthetic stream in
the broker. The worker's RECSTREAM_ENCODER_PATH is a link to the bundled model; re-pointing the
link at the new version makes the worker embed its catalog again in the background and switch.
Events keep flowing meanwhile, one user each at a steady pace: every one of them must get its list
(no gap), the lists' stamps go from the old version to the new one once, and a restart with the
same version reuses the saved index (nothing embedded again).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from models.datasets.synthetic import generate_catalog, generate_events
from models.encoder import ENCODER_INFO_FILE, bundled_model_path
from schemas.records import Event, EventType
from streams.cli import cli
from streams.kafka.producing import publish_events
from streams.kafka.watching import RecommendationWatcher
from streams.lab.reliability.checks import isolated_env
from streams.lab.stack import LocalStack

pytestmark = pytest.mark.integration

PACE_S = 0.1  # one event every 100 ms while the worker switches


def _version(stamp: str) -> str:
    return stamp.split("+", 1)[1]


def test_a_trained_encoder_rolls_out_live_without_a_gap_and_survives_a_restart(kafka_bootstrap: str,
                                                                               tmp_path: Path) -> None:
    current = tmp_path / "encoder"
    current.symlink_to(bundled_model_path())
    env = {**isolated_env(), "RECSTREAM_ENCODER_PATH": str(current), "RECSTREAM_ENCODER_CHECK_S": "1",
           "RECSTREAM_ENCODER_THREADS": "2"}
    catalog = generate_catalog()
    history = generate_events(catalog, n_users=40, events_per_user=20)
    with LocalStack(tmp_path / "stack", bootstrap=kafka_bootstrap, extra_env=env) as stack:
        stack.prefill(catalog, history)
        settings = stack.settings()
        # Train from the topics, as an operator would: a few hundred pairs, one epoch.
        trained = CliRunner().invoke(
            cli, ["encoder", "train", "--from-topics", "--out", str(tmp_path / "encoders"), "--min-count", "1",
                  "--max-pairs", "300", "--batch-size", "32"],
            env={**env, "RECSTREAM_KAFKA_BOOTSTRAP": stack.start_broker()})
        assert trained.exit_code == 0, trained.output
        folder = Path(trained.stdout.strip().splitlines()[-1])
        assert (folder / ENCODER_INFO_FILE).is_file() and "300 pairs" in trained.stderr
        new_version = folder.name

        publisher, worker = stack.start_worker_with_catalog(catalog, "rollout")
        assert worker.metric('recstream_encoder{version="all-MiniLM-L6-v2"}') == 1.0
        with RecommendationWatcher(settings) as watcher:
            sent: list[Event] = []
            now = int(time.time() * 1000)

            def send(n: int) -> None:
                event = Event(event_id=f"r-{n}", user_id=f"roll-{n}", type=EventType.CLICK,
                              item_id=catalog[n % len(catalog)].item_id, ts=now + n)
                publish_events(publisher, settings.topic_events, [event])
                publisher.flush()
                sent.append(event)

            for n in range(10):
                send(n)
                time.sleep(PACE_S)
            current.unlink()
            current.symlink_to(folder)  # the roll-out: point the path at the new version
            deadline = time.monotonic() + 180
            n = 10
            while worker.metric("recstream_encoder_switches_total") != 1.0:
                assert time.monotonic() < deadline, "the worker never switched to the new encoder"
                send(n)
                n += 1
                time.sleep(PACE_S)
            for n in range(n, n + 10):  # and after the switch
                send(n)
                time.sleep(PACE_S)
            for event in sent:
                assert watcher.wait_for_trigger(event.event_id, timeout=60) is not None, f"no list for {event.event_id}"
            lists = sorted((s.value for s in watcher.snapshot() if s.value["trigger_event_id"].startswith("r-")),
                           key=lambda v: int(v["trigger_event_id"][2:]))
        # Every event got its list while the catalog was embedded again: no gap in published lists.
        assert [v["trigger_event_id"] for v in lists] == [e.event_id for e in sent]
        stamps = [_version(v["model_version"]) for v in lists]
        first_new = stamps.index(new_version)
        assert stamps[:first_new] == ["all-MiniLM-L6-v2"] * first_new and first_new >= 10
        assert set(stamps[first_new:]) == {new_version}, "once switched, every list comes from the new index"
        assert worker.metric(f'recstream_encoder{{version="{new_version}"}}') == 1.0
        assert worker.metric('recstream_encoder{version="all-MiniLM-L6-v2"}') == 0.0
        assert worker.metric("recstream_index_items") == len(catalog)
        log = (stack.root / "rollout.log").read_text()
        assert re.search(rf"switched to encoder {new_version}: {len(catalog)} items embedded", log), log[-2000:]

        # A restart with the same version reuses the index saved after the switch.
        worker.stop()
        worker.start().wait_ready(timeout=240)
        assert worker.metric("recstream_items_embedded_total") == 0.0, "the saved index was reused"
        with RecommendationWatcher(settings) as watcher:
            publish_events(publisher, settings.topic_events, [Event(event_id="after-restart", user_id="roll-0",
                                                                    type=EventType.CLICK, item_id=catalog[3].item_id,
                                                                    ts=now + 10_000)])
            publisher.flush()
            seen = watcher.wait_for_trigger("after-restart", timeout=60)
        assert seen is not None and _version(seen.value["model_version"]) == new_version
