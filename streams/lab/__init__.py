"""Tools for developers and operators: embedded broker, local stack, demo, bench, reliability, evaluate.

May import the worker, the client, streams.kafka, streams.settings, models and schemas; never the CLI.
"""
