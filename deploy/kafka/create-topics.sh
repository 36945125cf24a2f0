#!/bin/sh
# Creates recstream's Kafka topics. Idempotent: every create uses --if-not-exists, so it is safe
# to run on each `docker compose up` (the one-shot `topics` service does exactly that).
#
# The layout here must agree with deploy/kafka/topics.json (tests/unit/deploy checks it):
#   events           EVENTS_PARTITIONS partitions, retention 7 days
#   items            1 partition, compacted (the catalog, keyed by item_id)
#   recommendations  EVENTS_PARTITIONS partitions, compacted (keyed by user_id: latest list per user),
#                    every record compacted within a day (README "Privacy")
#   covisits         EVENTS_PARTITIONS partitions, retention 365 days (every worker replays it)
#   dead-letter      1 partition, retention 14 days, messages up to 4 MiB (originals in base64)
#
# Environment (all optional):
#   BOOTSTRAP            bootstrap servers                       (default kafka:29092)
#   EVENTS_PARTITIONS    partitions of events and recommendations (default 4); must equal the
#                        workers' RECSTREAM_EVENTS_PARTITIONS
#   REPLICATION_FACTOR   replication factor of every topic       (default 1: single broker)
#   RECSTREAM_TOPIC_EVENTS, RECSTREAM_TOPIC_ITEMS, RECSTREAM_TOPIC_RECOMMENDATIONS,
#   RECSTREAM_TOPIC_COVISITS, RECSTREAM_TOPIC_DEAD_LETTER   topic names, as the workers read them
#   KAFKA_TOPICS         path of kafka-topics.sh                 (default /opt/kafka/bin/kafka-topics.sh)
set -eu

BOOTSTRAP="${BOOTSTRAP:-kafka:29092}"
EVENTS_PARTITIONS="${EVENTS_PARTITIONS:-4}"
REPLICATION_FACTOR="${REPLICATION_FACTOR:-1}"
KAFKA_TOPICS="${KAFKA_TOPICS:-/opt/kafka/bin/kafka-topics.sh}"

TOPIC_EVENTS="${RECSTREAM_TOPIC_EVENTS:-recstream.events}"
TOPIC_ITEMS="${RECSTREAM_TOPIC_ITEMS:-recstream.items}"
TOPIC_RECOMMENDATIONS="${RECSTREAM_TOPIC_RECOMMENDATIONS:-recstream.recommendations}"
TOPIC_COVISITS="${RECSTREAM_TOPIC_COVISITS:-recstream.covisits}"
TOPIC_DEAD_LETTER="${RECSTREAM_TOPIC_DEAD_LETTER:-recstream.dead-letter}"

RETENTION_7_DAYS_MS=604800000
RETENTION_14_DAYS_MS=1209600000
RETENTION_365_DAYS_MS=31536000000
ONE_DAY_MS=86400000
SIX_HOURS_MS=21600000

# create_topic NAME PARTITIONS [--config KEY=VALUE]...
create_topic() {
    name="$1"
    partitions="$2"
    shift 2
    echo "create-topics: ${name}: partitions=${partitions} replication-factor=${REPLICATION_FACTOR} $*"
    "$KAFKA_TOPICS" --bootstrap-server "$BOOTSTRAP" --create --if-not-exists \
        --topic "$name" --partitions "$partitions" --replication-factor "$REPLICATION_FACTOR" "$@"
}

echo "create-topics: bootstrap ${BOOTSTRAP}"

create_topic "$TOPIC_EVENTS" "$EVENTS_PARTITIONS" \
    --config "retention.ms=${RETENTION_7_DAYS_MS}"

create_topic "$TOPIC_ITEMS" 1 \
    --config cleanup.policy=compact

# An erased user's lists are compacted away within a day; the tombstone (only the user id) a day later.
create_topic "$TOPIC_RECOMMENDATIONS" "$EVENTS_PARTITIONS" \
    --config cleanup.policy=compact \
    --config "max.compaction.lag.ms=${ONE_DAY_MS}" \
    --config "segment.ms=${SIX_HOURS_MS}" \
    --config min.cleanable.dirty.ratio=0.1 \
    --config "delete.retention.ms=${ONE_DAY_MS}"

create_topic "$TOPIC_COVISITS" "$EVENTS_PARTITIONS" \
    --config "retention.ms=${RETENTION_365_DAYS_MS}"

create_topic "$TOPIC_DEAD_LETTER" 1 \
    --config "retention.ms=${RETENTION_14_DAYS_MS}" \
    --config "max.message.bytes=4194304"

echo "create-topics: done (5 topics ensured)"
