"""The users table's changelog (a user's state) is created with the erase-bounding compaction."""

from __future__ import annotations

from streams.kafka.topics import ERASABLE_COMPACTION, changelog_topic
from streams.settings import Settings
from streams.worker.app import build_app


def test_the_users_changelog_compacts_erased_states_within_the_bound() -> None:
    settings = Settings(kafka_bootstrap="127.0.0.1:1", http_port=0)  # building the app connects to nothing
    topic = build_app(settings).tables["users"].changelog_topic
    assert topic.get_topic_name() == changelog_topic(settings)
    assert topic.config == ERASABLE_COMPACTION
