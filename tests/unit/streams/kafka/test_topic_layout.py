"""The Python topic layout (what workers create) matches deploy/kafka/topics.json (what compose creates)."""

import json
from pathlib import Path

from streams.kafka.topics import topic_specs
from streams.settings import Settings

TOPICS_JSON = Path(__file__).resolve().parents[4] / "deploy" / "kafka" / "topics.json"


def test_python_and_deploy_layouts_agree() -> None:
    doc = json.loads(TOPICS_JSON.read_text())
    entries = doc["topics"] if isinstance(doc, dict) else doc
    settings = Settings()
    specs = {s.name: s for s in topic_specs(settings)}
    assert {e["default_name"] for e in entries} == set(specs)
    for entry in entries:
        spec = specs[entry["default_name"]]
        partitions = settings.events_partitions if entry["partitions"] == "events" else entry["partitions"]
        assert spec.partitions == partitions, entry["default_name"]
        assert {k: str(v) for k, v in entry.get("config", {}).items()} == spec.config, entry["default_name"]


README = TOPICS_JSON.parents[2] / "README.md"


def test_what_an_erase_leaves_in_kafka_is_compacted_away_within_the_stated_bound() -> None:
    """The recommendations topic and the users changelog hold a user's data; an erase tombstones it.
    Apache Kafka removes what the tombstone supersedes within max.compaction.lag.ms, and the tombstone
    delete.retention.ms later: one day each, as README's privacy section says."""
    from streams.kafka.topics import DAY_MS, ERASABLE_COMPACTION

    settings = Settings()
    recs = next(s for s in topic_specs(settings) if s.name == settings.topic_recommendations)
    assert recs.config == ERASABLE_COMPACTION
    assert ERASABLE_COMPACTION["cleanup.policy"] == "compact"
    assert int(ERASABLE_COMPACTION["max.compaction.lag.ms"]) == DAY_MS
    assert int(ERASABLE_COMPACTION["segment.ms"]) <= DAY_MS, "a segment rolls before the bound, so it can be cleaned"
    assert int(ERASABLE_COMPACTION["delete.retention.ms"]) == DAY_MS
    privacy = README.read_text().split("## Privacy", 1)[1].split("\n## ", 1)[0]
    assert "within a day" in privacy and "within two days" in privacy

