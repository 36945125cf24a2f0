"""The worker's Faust `broker_credentials`, from the same RECSTREAM_KAFKA_* settings as every other client.

Kept beside the worker so that the Kafka room (streams/kafka/) stays free of Faust.
"""

from __future__ import annotations

from typing import Any

from streams.kafka.security import ssl_context
from streams.settings import Settings


def faust_credentials(settings: Settings) -> Any:
    """`broker_credentials` for the Faust app, or None for PLAINTEXT."""
    import faust

    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return faust.SSLCredentials(ssl_context(settings))
    password = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else None
    return faust.SASLCredentials(
        username=settings.kafka_sasl_username,
        password=password,
        mechanism=settings.kafka_sasl_mechanism or "PLAIN",
        ssl_context=ssl_context(settings),
    )
