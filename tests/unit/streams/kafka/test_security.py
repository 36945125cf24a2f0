"""Kafka security settings reach Faust and aiokafka (streams.kafka.security), and secrets stay hidden."""

from __future__ import annotations

import ssl

import faust

from streams.kafka.security import aiokafka_options
from streams.settings import Settings
from streams.worker.credentials import faust_credentials


def test_plaintext_needs_nothing() -> None:
    s = Settings(kafka_security_protocol="PLAINTEXT")
    assert faust_credentials(s) is None
    assert aiokafka_options(s) == {"security_protocol": "PLAINTEXT"}


def test_sasl_ssl_reaches_faust_and_aiokafka_without_leaking_the_password() -> None:
    s = Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
                 kafka_sasl_username="svc-recstream", kafka_sasl_password="s3cret")
    creds = faust_credentials(s)
    assert isinstance(creds, faust.SASLCredentials)
    assert creds.username == "svc-recstream" and creds.password == "s3cret"
    assert str(creds.mechanism.value) == "SCRAM-SHA-512" and creds.protocol.value == "SASL_SSL"
    assert isinstance(creds.ssl_context, ssl.SSLContext)
    assert "s3cret" not in repr(creds)
    opts = aiokafka_options(s)
    assert opts["security_protocol"] == "SASL_SSL" and opts["sasl_mechanism"] == "SCRAM-SHA-512"
    assert opts["sasl_plain_username"] == "svc-recstream" and opts["sasl_plain_password"] == "s3cret"
    assert isinstance(opts["ssl_context"], ssl.SSLContext)


def test_sasl_plaintext_has_no_tls_and_defaults_to_plain() -> None:
    s = Settings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_username="u", kafka_sasl_password="p")
    creds = faust_credentials(s)
    assert creds.protocol.value == "SASL_PLAINTEXT" and creds.ssl_context is None
    assert creds.mechanism.value == "PLAIN"
    assert "ssl_context" not in aiokafka_options(s)


def test_ssl_only() -> None:
    s = Settings(kafka_security_protocol="SSL")
    assert isinstance(faust_credentials(s), faust.SSLCredentials)
    opts = aiokafka_options(s)
    assert opts["security_protocol"] == "SSL" and isinstance(opts["ssl_context"], ssl.SSLContext)
    assert "sasl_mechanism" not in opts
