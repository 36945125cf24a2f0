"""All configuration, in one typed object read from `RECSTREAM_*` environment variables.

Every field is documented in the configuration table of docs/operations.md (a test keeps the two in sync).
"""

from __future__ import annotations

import json
import socket
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.params import CoreParams
from models.variants import Experiment, VariantsError
from schemas.decode import MIN_TS_MS, Limits


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RECSTREAM_", extra="ignore", frozen=True)

    # Kafka
    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, host:port[,host:port]")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security protocol"
    )
    kafka_sasl_mechanism: str | None = Field(None, description="SASL mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)")
    kafka_sasl_username: str | None = Field(None, description="SASL user name")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password (never logged)")
    kafka_ssl_cafile: Path | None = Field(None, description="CA bundle to verify the brokers (SSL)")
    topic_events: str = Field("recstream.events", description="Input events topic (key = user_id)")
    topic_items: str = Field("recstream.items", description="Catalog topic (key = item_id)")
    topic_recommendations: str = Field("recstream.recommendations", description="Output topic (key = user_id)")
    topic_covisits: str = Field(
        "recstream.covisits", description="Co-visits each worker publishes and every worker applies (internal)"
    )
    topic_dead_letter: str = Field("recstream.dead-letter", description="Where undecodable or invalid messages go")
    events_partitions: int = Field(4, ge=1, description="Partitions of the events and recommendations topics")
    kafka_session_timeout_s: float = Field(
        10.0, ge=6.0, le=300.0,
        description="Consumer-group session timeout: how soon a crashed worker's partitions move to another",
    )
    app_id: str = Field("recstream", description="Faust app id: the consumer group and the table changelog prefix")
    kafka_group_instance_id: str | None = Field(
        None,
        description="Static group membership: a stable id per worker, unique in the group (e.g. the pod name). A "
        "restarted worker gets its partitions back without waiting out its session; a stopped one keeps them "
        "for a session timeout",
    )

    # Worker
    data_dir: Path = Field(Path(".recstream/data"), description="RocksDB tables and the item index files")
    worker_id: str = Field("worker-1", description="Names this worker's local state folder; unique per host")
    fetch_max_wait_ms: int = Field(
        20, ge=1, le=1500, description="Longest a worker's fetch waits at the broker for new events, co-visits and items (Faust's default: 1500, aiokafka's 500)"
    )
    batch_max: int = Field(500, ge=1, description="Most events handled per batch")
    batch_wait_ms: int = Field(10, ge=0, description="How long a batch waits to fill, in ms")
    rocksdb_write_buffer_mb: int = Field(
        16, ge=1, description="RocksDB memtable size per users-table partition and for the list cache (two may be in memory at once)"
    )
    rocksdb_block_cache_mb: int = Field(32, ge=1, description="RocksDB read cache per users-table partition and for the list cache")
    index_save_interval_s: float = Field(5.0, gt=0, description="How often a changed item index is saved to disk")
    covis_save_interval_s: float = Field(
        60.0, gt=0, description="How often the co-visitation store is saved to disk (a restart re-reads what came after)"
    )
    encoder_threads: int = Field(1, ge=1, description="torch threads for the sentence encoder")
    encoder_path: Path | None = Field(
        None, description="Folder of the item encoder (from `recstream encoder train`); default the bundled "
        "all-MiniLM-L6-v2. A worker checks it every RECSTREAM_ENCODER_CHECK_S and switches to a new version live")
    encoder_check_s: float = Field(30.0, ge=0, description="How often a worker looks for a new encoder version "
                                   "at RECSTREAM_ENCODER_PATH (0: only at start)")
    encoder_int8: bool = Field(
        False, description="Embed item and query text with the int8-quantized encoder (faster, slightly different vectors)"
    )
    max_message_bytes: int = Field(64 * 1024, ge=256, description="Larger events are dead-lettered")
    max_query_chars: int = Field(1_000, ge=1, description="Longer search queries are dead-lettered")
    event_ts_min_ms: int = Field(
        MIN_TS_MS, ge=0, description="Events timed before this (epoch ms; default 1990-01-01) are dead-lettered"
    )
    event_ts_max_future_s: float = Field(
        86_400.0, ge=0, description="Events timed more than this ahead of the worker's clock are dead-lettered"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("WARNING", description="Worker log level")

    # Recommendation
    top_k: int = Field(20, ge=1, le=1000, description="Items per recommendation list")
    model_version: str = Field("recstream-0.1", description="Stamped on each published list")
    short_half_life_s: float = Field(1800.0, gt=0, description="Session (short-term) interest half-life, event time")
    long_half_life_days: float = Field(30.0, gt=0, description="Long-term interest half-life, event time")
    excluded_items: int = Field(
        100, ge=0, description="Purchased or disliked items kept per user and never recommended again; beyond it the "
        "oldest may be recommended again (bounds each user's state)"
    )
    stored_k: int = Field(
        50, ge=0, le=500, description="Items each user's list keeps (with reasons) for the read API's request filters; "
        "subscribers still receive the top RECSTREAM_TOP_K as `items`, the rest comes as `more`. Below TOP_K: none kept"
    )
    exclude_recent: bool = Field(
        False, description="Also never recommend the user's 50 newest items of any kind (clicked, viewed): for "
        "catalogs consumed once, like films or articles; off, viewed items may be shown again"
    )
    variants: Path | None = Field(
        None, description="Experiment variants file (YAML or JSON): a salt and variants, each with a name, a traffic "
        "share, CoreParams overrides and optionally an encoder folder of its own; every user stays in one variant "
        "(docs/experiments.md). Unset: everyone in `default`"
    )

    # Observability
    metrics_host: str = Field("127.0.0.1", description="Address the /metrics endpoint binds to")
    metrics_port: int = Field(9108, ge=0, le=65535, description="Prometheus /metrics port (0 = off)")
    http_bind: str = Field("127.0.0.1", description="Address the read API (GET /recommendations/{user_id}) binds to")
    http_port: int = Field(6066, ge=0, le=65535, description="Read API port (0 = off)")
    http_token: SecretStr | None = Field(
        None, description="Bearer token GET /recommendations requires (Authorization: Bearer TOKEN); health, "
        "readiness and /openapi.json stay open. Unset: no authentication (bind to 127.0.0.1 then)")
    http_advertised_host: str | None = Field(
        None, description="Host other workers use to forward read-API requests here (default: the bind address, "
        "or this machine's hostname when binding to all addresses)"
    )

    # Data
    movielens: Path | None = Field(None, description="MovieLens folder (ml-latest-small format) for demo/replay")

    @cached_property
    def core(self) -> CoreParams:
        return CoreParams(
            top_k=self.top_k,
            short_half_life_s=self.short_half_life_s,
            long_half_life_s=self.long_half_life_days * 86_400.0,
            excluded_items=self.excluded_items,
            exclude_recent=self.exclude_recent,
            stored_k=self.stored_k,
        )

    @cached_property
    def experiment(self) -> Experiment:
        """The variants of RECSTREAM_VARIANTS on top of `core`; everyone in `default` without it."""
        return load_experiment(self.variants, self.core)

    def rocksdb_memory_mb(self, partitions: int) -> int:
        """The RocksDB memory ceiling of a worker owning `partitions` partitions: one users database per
        partition, plus the list cache's one."""
        return (partitions + 1) * (2 * self.rocksdb_write_buffer_mb + self.rocksdb_block_cache_mb)

    @property
    def limits(self) -> Limits:
        return Limits(
            max_bytes=self.max_message_bytes,
            max_query_chars=self.max_query_chars,
            min_ts_ms=self.event_ts_min_ms,
            max_future_ms=int(self.event_ts_max_future_s * 1000),
        )

    @property
    def advertised_http_host(self) -> str:
        if self.http_advertised_host:
            return self.http_advertised_host
        return socket.gethostname() if self.http_bind in ("0.0.0.0", "::", "") else self.http_bind

    @property
    def worker_dir(self) -> Path:
        return self.data_dir / self.worker_id

    @property
    def index_dir(self) -> Path:
        return self.worker_dir / "index"

    def confluent_config(self) -> dict[str, str]:
        """librdkafka settings for every confluent-kafka client recstream creates."""
        conf = {"bootstrap.servers": self.kafka_bootstrap, "security.protocol": self.kafka_security_protocol}
        if self.kafka_sasl_mechanism:
            conf["sasl.mechanism"] = self.kafka_sasl_mechanism
        if self.kafka_sasl_username:
            conf["sasl.username"] = self.kafka_sasl_username
        if self.kafka_sasl_password:
            conf["sasl.password"] = self.kafka_sasl_password.get_secret_value()
        if self.kafka_ssl_cafile:
            conf["ssl.ca.location"] = str(self.kafka_ssl_cafile)
        return conf


def load_experiment(path: Path | None, base: CoreParams) -> Experiment:
    """The experiment in `path` on top of `base`; everyone in `default` when `path` is None."""
    if path is None:
        return Experiment.single(base)
    try:
        text = path.read_text()
    except OSError as exc:
        raise VariantsError(f"cannot read the variants file {path}: {exc.strerror or exc}") from None
    try:
        spec = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise VariantsError(f"the variants file {path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: "
                            f"{first}") from None
    try:
        experiment = Experiment.from_spec(spec, base)
    except VariantsError as exc:
        raise VariantsError(f"{path}: {exc}") from None
    return _with_encoder_folders(experiment, path.parent)


def _with_encoder_folders(experiment: Experiment, relative_to: Path) -> Experiment:
    """Variants' encoder paths resolved against the variants file's folder (the worker checks that each
    holds a model before it joins the group: streams/worker/main.py)."""
    variants = tuple(
        replace(v, encoder=v.encoder if v.encoder.is_absolute() else relative_to / v.encoder) if v.encoder else v
        for v in experiment.variants)
    return replace(experiment, variants=variants)
