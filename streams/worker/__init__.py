"""What runs inside a worker process: the Faust app and its agents, table writes, output, read API, metrics.

May import streams.kafka, streams.settings, models and schemas; never streams.client, streams.lab or the CLI.
"""
