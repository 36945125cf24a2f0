"""The RECSTREAM_KAFKA_* security settings turned into each plain Kafka client's own options.

The CLI's confluent-kafka clients take `Settings.confluent_config()`; the aiokafka consumers the
services run take `aiokafka_options()`. The worker's Faust credentials are built from the same
`ssl_context()` in streams/worker/credentials.py, so this room never imports Faust. Passwords come
from a SecretStr and are never logged (the credentials' repr shows the user name only).
"""

from __future__ import annotations

import ssl
from typing import Any

from streams.settings import Settings


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if settings.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    cafile = str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
    return ssl.create_default_context(cafile=cafile)


def aiokafka_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for AIOKafkaConsumer/Producer."""
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = ssl_context(settings)
    if protocol.startswith("SASL"):
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism or "PLAIN"
        options["sasl_plain_username"] = settings.kafka_sasl_username
        if settings.kafka_sasl_password:
            options["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    return options
