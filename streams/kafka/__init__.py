"""Kafka plumbing shared by every room: topic layout and partitioner, producing, reading topics, security options.

May import streams.settings, models and schemas, confluent-kafka and aiokafka; never Faust or another room.
"""
