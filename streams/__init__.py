"""recstream's service around the pure core (models/, schemas/), in four rooms plus two modules.

- `kafka/`: plain Kafka plumbing every room may use (topic layout, producing, reading topics).
- `client/`: the SDK an app imports to send events and receive lists.
- `worker/`: what runs inside a worker process (Faust app, agents, state writes, read API, metrics).
- `lab/`: tools for developers and operators (broker, stack, demo, bench, reliability, evaluate).
- `settings.py`: the one typed settings object (RECSTREAM_*), below every room.
- `cli.py`: the `recstream` command, above every room.

The direction of imports is cli -> lab -> worker | client -> kafka -> settings -> models -> schemas,
enforced by the import-linter contracts in pyproject.toml.
"""
