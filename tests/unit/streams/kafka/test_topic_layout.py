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
