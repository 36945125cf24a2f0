"""Hostile input, drawn by hypothesis, pushed through a real broker into a running worker.

Every probe is a Kafka message (key and value bytes). Hostile probes must each land on the
dead-letter topic once, with the reason the pure decoder gives and the original bytes; valid
probes (unknown users and items, misrouted keys and odd Unicode included) must each be applied.
"""

from __future__ import annotations

import base64
import itertools
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, Message
from hypothesis import HealthCheck, Phase, given, seed, settings as hyp_settings
from hypothesis import strategies as st

from schemas.decode import (
    INVALID_JSON,
    QUERY_TOO_LONG,
    SCHEMA,
    TOO_LARGE,
    TS_OUT_OF_RANGE,
    InvalidMessage,
    Limits,
    decode_event,
)
from schemas.records import EventType
from streams.kafka.producing import make_producer
from streams.kafka.watching import scan_to_end
from streams.lab.reliability.checks import lost_and_twice, wait_until_counted
from streams.lab.stack import WorkerProcess
from streams.settings import Settings

DAY_MS = 86_400_000
ONE_MB = 1_000_000

# Which reasons each hostile kind may legitimately get (random bytes can happen to be JSON, etc.).
HOSTILE_KINDS: dict[str, frozenset[str]] = {
    "not_json": frozenset({INVALID_JSON, SCHEMA}),
    "wrong_type": frozenset({SCHEMA}),
    "missing_field": frozenset({SCHEMA}),
    "unknown_type": frozenset({SCHEMA}),
    "extra_field": frozenset({SCHEMA}),
    "empty_id": frozenset({SCHEMA}),
    "nan_or_infinity": frozenset({INVALID_JSON}),
    "ts_far_past": frozenset({TS_OUT_OF_RANGE}),
    "ts_far_future": frozenset({TS_OUT_OF_RANGE}),
    "one_megabyte": frozenset({TOO_LARGE}),
    "deeply_nested": frozenset({INVALID_JSON, SCHEMA}),
    "invalid_utf8": frozenset({INVALID_JSON}),
    "lone_surrogate": frozenset({INVALID_JSON}),
    "long_query": frozenset({QUERY_TOO_LONG}),
    "query_100kb": frozenset({TOO_LARGE, QUERY_TOO_LONG}),
    "no_value": frozenset({INVALID_JSON}),
}
VALID_KINDS = ("known", "unknown_user", "unknown_item", "search", "misrouted", "odd_unicode")
# Sampling weights: 1 MB values are few (they cost the broker memory), the rest about even.
_WEIGHTED = [k for k in HOSTILE_KINDS if k != "one_megabyte" for _ in range(6)] + ["one_megabyte"] + [
    f"valid:{k}" for k in VALID_KINDS for _ in range(3)
]


@dataclass(frozen=True)
class Probe:
    kind: str
    key: bytes | None
    value: bytes | None
    # For valid probes: the user the event must be applied to.
    user_id: str | None = None

    @property
    def hostile(self) -> bool:
        return self.user_id is None


def _doc(draw: st.DrawFn, users: list[str], items: list[str], now_ms: int) -> dict[str, Any]:
    kind = draw(st.sampled_from([EventType.CLICK, EventType.BROWSE, EventType.PURCHASE, EventType.DISLIKE]))
    return {
        "event_id": "placeholder",
        "user_id": draw(st.sampled_from(users)),
        "type": kind.value,
        "item_id": draw(st.sampled_from(items)),
        "ts": draw(st.integers(now_ms - 30 * DAY_MS, now_ms)),
    }


def _dump(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode("utf-8")


_wrong_values = st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False) | st.lists(
    st.integers(), max_size=3
) | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
_odd_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=40)


@st.composite
def probes(draw: st.DrawFn, users: list[str], items: list[str], now_ms: int) -> Probe:
    """One Kafka message: hostile (16 kinds) or valid (6 kinds), chosen by weight."""
    kind = draw(st.sampled_from(_WEIGHTED))
    doc = _doc(draw, users, items, now_ms)
    key = draw(st.sampled_from([doc["user_id"].encode(), None]) | st.binary(max_size=20))
    if kind.startswith("valid:"):
        return _valid(draw, kind.removeprefix("valid:"), doc, now_ms)
    value: bytes | None
    if kind == "not_json":
        value = draw(st.binary(min_size=1, max_size=300) | st.text(max_size=100).map(lambda t: ("x" + t).encode()))
    elif kind == "wrong_type":
        field_ = draw(st.sampled_from(["event_id", "user_id", "type", "item_id", "ts"]))
        value = _dump({**doc, field_: draw(_wrong_values.filter(lambda v: v is not None or field_ != "item_id"))
                       if field_ != "ts" else draw(st.text(max_size=8) | st.booleans() | st.just(1.5))})
    elif kind == "missing_field":
        drop = draw(st.sampled_from(["event_id", "user_id", "type", "ts", "item_id"]))
        value = _dump({k: v for k, v in doc.items() if k != drop})
    elif kind == "unknown_type":
        value = _dump({**doc, "type": draw(st.sampled_from(["view", "CLICK", "Purchase", "teleport", ""])
                                             | _odd_text.filter(lambda t: t not in {e.value for e in EventType}))})
    elif kind == "extra_field":
        value = _dump({**doc, draw(st.sampled_from(["rating", "admin", "__proto__", "ts2"])): draw(st.integers())})
    elif kind == "empty_id":
        value = _dump({**doc, draw(st.sampled_from(["event_id", "user_id", "item_id"])): ""})
    elif kind == "nan_or_infinity":
        literal = draw(st.sampled_from([b"NaN", b"Infinity", b"-Infinity"]))
        where = draw(st.sampled_from(["ts", "extra"]))
        if where == "ts":
            value = _dump({**doc, "ts": 0}).replace(b'"ts": 0', b'"ts": ' + literal)
        else:
            value = _dump(doc)[:-1] + b', "score": ' + literal + b"}"
    elif kind == "ts_far_past":
        value = _dump({**doc, "ts": draw(st.integers(0, Limits().min_ts_ms - 1))})
    elif kind == "ts_far_future":
        value = _dump({**doc, "ts": draw(st.integers(now_ms + 2 * DAY_MS, 2**63) | st.integers(2**63, 10**40))})
    elif kind == "one_megabyte":
        value = _pad(_dump({**doc, "type": "search", "item_id": None, "query": ""}), ONE_MB)
    elif kind == "deeply_nested":
        depth = draw(st.integers(100, 10_000))  # at most ~60 kB: under the size limit
        opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
        value = opener * depth + b"1" + closer * depth
    elif kind == "invalid_utf8":
        bad = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80"]))
        field_ = draw(st.sampled_from(["user_id", "item_id", "event_id"]))
        value = _dump({**doc, field_: "MARK"}).replace(b"MARK", b"a" + bad + b"b")
    elif kind == "lone_surrogate":
        field_ = draw(st.sampled_from(["user_id", "item_id", "event_id"]))
        escape = draw(st.sampled_from([b"\\ud800", b"\\udfff", b"\\udbff\\u0041"]))
        value = _dump({**doc, field_: "MARK"}).replace(b"MARK", escape)
    elif kind == "long_query":
        n = draw(st.integers(Limits().max_query_chars + 1, 20_000))
        value = _dump({**doc, "type": "search", "item_id": None, "query": "q" * n})
    elif kind == "query_100kb":
        value = _pad(_dump({**doc, "type": "search", "item_id": None, "query": ""}), 100_000)
    else:  # no_value
        value = draw(st.sampled_from([None, b""]))
    return Probe(kind, key, value)


def _pad(template: bytes, size: int) -> bytes:
    """`template` with its empty query filled so the whole value is exactly `size` bytes."""
    filler = size - len(template)
    return template.replace(b'"query": ""', b'"query": "' + b"z" * filler + b'"')


def _valid(draw: st.DrawFn, kind: str, doc: dict[str, Any], now_ms: int) -> Probe:
    if kind == "unknown_user":
        doc["user_id"] = "new-" + draw(st.text("abcdefghij0123456789", min_size=1, max_size=12))
    elif kind == "unknown_item":
        doc["item_id"] = "not-in-catalog-" + draw(st.text("abcdef0123456789", min_size=1, max_size=8))
    elif kind == "search":
        doc.update(type="search", item_id=None, query=draw(_odd_text))
    elif kind == "odd_unicode":
        doc["user_id"] = draw(_odd_text)
        doc["item_id"] = draw(_odd_text)
    key = None if kind == "misrouted" and draw(st.booleans()) else (
        b"someone-else" if kind == "misrouted" else doc["user_id"].encode("utf-8"))
    return Probe(f"valid:{kind}", key, _dump({k: v for k, v in doc.items() if v is not None}), doc["user_id"])


def draw_probes(hostile: int, users: list[str], items: list[str], now_ms: int, start_seed: int = 0) -> list[Probe]:
    """At least `hostile` hostile probes plus the valid ones drawn with them, in drawing order."""
    out: list[Probe] = []

    for s in itertools.count(start_seed):
        @hyp_settings(max_examples=400, database=None, deadline=None, phases=[Phase.generate],
                      suppress_health_check=list(HealthCheck))
        @seed(s)
        @given(st.lists(probes(users, items, now_ms), min_size=1, max_size=12))
        def collect(batch: list[Probe]) -> None:
            out.extend(batch)

        collect()
        if sum(p.hostile for p in out) >= hostile:
            return _with_unique_event_ids(out)
    raise AssertionError("unreachable")


def _with_unique_event_ids(probes_: list[Probe]) -> list[Probe]:
    """Valid probes get unique event ids: a repeated id would (rightly) be skipped as a redelivery."""
    fixed = []
    for n, p in enumerate(probes_):
        if not p.hostile and p.value is not None:
            doc = json.loads(p.value)
            doc["event_id"] = f"valid-{n}"
            p = Probe(p.kind, p.key, _dump(doc), p.user_id)
        fixed.append(p)
    return fixed


def expected_reason(probe: Probe, limits: Limits, now_ms: int) -> str | None:
    """What the pure decoder says: the oracle the worker's dead letters must agree with."""
    try:
        decode_event(probe.value, limits, now_ms)
    except InvalidMessage as exc:
        return exc.reason
    return None


@dataclass
class HostileReport:
    hostile_tried: int
    valid_sent: int
    dead_lettered: int
    by_kind: dict[str, int]
    by_reason: dict[str, int]
    reason_mismatches: list[str] = field(default_factory=list)
    bytes_mismatches: int = 0
    missing_dead_letters: int = 0
    unexpected_dead_letters: int = 0
    valid_lost: int = 0
    valid_twice: int = 0
    worker_deaths: int = 0
    seconds: float = 0.0


def send_probes(settings: Settings, probes_: list[Probe]) -> list[tuple[int, int]]:
    """Produce every probe in order; returns (partition, offset) per probe from the delivery reports."""
    producer = make_producer(settings, **{"message.max.bytes": 2 * ONE_MB, "enable.idempotence": False})
    where: list[tuple[int, int] | None] = [None] * len(probes_)
    errors: list[KafkaError] = []

    def on_delivery(n: int) -> Any:
        def report(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                errors.append(err)
            else:
                where[n] = (msg.partition(), msg.offset())
        return report

    for n, p in enumerate(probes_):
        while True:
            try:
                producer.produce(settings.topic_events, key=p.key, value=p.value, on_delivery=on_delivery(n))
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    producer.flush(120)
    if errors or any(w is None for w in where):
        raise RuntimeError(f"{len(errors)} probe(s) not delivered; first error: {errors[:1]}")
    return [w for w in where if w is not None]


def run_hostile(settings: Settings, worker: WorkerProcess, probes_: list[Probe], workdir: Path) -> HostileReport:
    """Send the probes, then check dead letters and applied counts against them."""
    started = time.monotonic()
    now_ms = int(time.time() * 1000)
    limits = settings.limits
    pid = worker.proc.pid if worker.proc else None
    where = send_probes(settings, probes_)
    hostile = {w: p for w, p in zip(where, probes_) if p.hostile}
    valid = [p for p in probes_ if not p.hostile]
    expected: dict[str, list[str]] = {}
    for p in valid:
        if p.user_id is not None and p.value is not None:
            expected.setdefault(p.user_id, []).append(json.loads(p.value)["event_id"])
    rows = wait_until_counted(worker.env, workdir / "hostile-export.jsonl", expected, timeout=300)
    letters = read_dead_letters(settings, len(hostile), timeout=120)

    report = HostileReport(
        hostile_tried=len(hostile), valid_sent=len(valid), dead_lettered=len(letters),
        by_kind=dict(Counter(p.kind for p in probes_)), by_reason=dict(Counter(d["reason"] for d in letters.values())),
    )
    for at, probe in hostile.items():
        letter = letters.get((settings.topic_events, *at))
        if letter is None:
            report.missing_dead_letters += 1
            continue
        want = expected_reason(probe, limits, now_ms)
        if letter["reason"] != want or want not in HOSTILE_KINDS[probe.kind]:
            report.reason_mismatches.append(f"{probe.kind}: dead letter says {letter['reason']}, decoder says {want}")
        original = base64.b64decode(letter["original_b64"]) if letter["original_b64"] is not None else None
        if original != probe.value:
            report.bytes_mismatches += 1
    report.unexpected_dead_letters = sum(1 for k in letters if (k[1], k[2]) not in hostile)
    report.valid_lost, report.valid_twice = lost_and_twice(expected, rows)
    alive = worker.proc is not None and worker.proc.poll() is None and worker.proc.pid == pid
    report.worker_deaths = 0 if alive else 1
    report.seconds = time.monotonic() - started
    return report


def read_dead_letters(
    settings: Settings, at_least: int, timeout: float, allow_duplicates: bool = False
) -> dict[tuple[str, int, int], dict[str, Any]]:
    """Dead letters by their source (topic, partition, offset); waits until `at_least` are there.
    Duplicates are an error unless allowed: a worker killed after dead-lettering a message and
    before committing past it dead-letters it again when the message is redelivered."""
    deadline = time.monotonic() + timeout
    while True:
        letters: dict[tuple[str, int, int], dict[str, Any]] = {}
        duplicates = 0
        for msg in scan_to_end(settings, settings.topic_dead_letter, timeout=timeout):
            doc = json.loads(msg.value())
            src = doc["source"]
            at = (src["topic"], src["partition"], src["offset"])
            duplicates += at in letters
            letters[at] = doc
        if len(letters) >= at_least or time.monotonic() > deadline:
            if duplicates and not allow_duplicates:
                raise AssertionError(f"{duplicates} message(s) dead-lettered more than once")
            return letters
        time.sleep(2.0)


def summary_line(report: HostileReport) -> str:
    return (f"{report.hostile_tried} hostile messages and {report.valid_sent} valid ones in {report.seconds:.0f}s: "
            f"{report.dead_lettered} dead-lettered, {report.missing_dead_letters} missing, "
            f"{len(report.reason_mismatches)} wrong reasons, {report.bytes_mismatches} altered originals, "
            f"{report.valid_lost} valid lost, {report.valid_twice} applied twice, {report.worker_deaths} worker deaths")

