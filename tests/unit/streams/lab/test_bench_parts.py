"""The measuring parts of `recstream bench` that need no broker: index recall/QPS and stream shaping."""

from __future__ import annotations

import numpy as np

from models.datasets.synthetic import generate_catalog, generate_events
from streams.lab.bench import index_bench
from schemas.records import Event, EventType
from streams.kafka.watching import Seen
from streams.lab.bench.command import TARGETS, markdown, new_items, summarise
from streams.lab.measure import event_latencies_ms
from streams.lab.bench.stream_bench import consecutive_same_user, interleaved, wide_stream


def test_exact_top_k_is_the_brute_force_answer() -> None:
    rng = np.random.default_rng(1)
    items = index_bench.clustered_unit_vectors(500, 16, clusters=5, spread=0.3, rng=rng)
    queries = index_bench.clustered_unit_vectors(7, 16, clusters=5, spread=0.3, rng=rng)
    got = index_bench.exact_top_k(items, queries, k=10, chunk=3)
    want = np.argsort(-(queries @ items.T), axis=1)[:, :10]
    np.testing.assert_array_equal(got, want)
    assert np.allclose(np.linalg.norm(items, axis=1), 1.0, atol=1e-5)


def test_index_sweep_reports_recall_that_grows_with_ef() -> None:
    result = index_bench.run(n=3_000, dim=32, n_queries=200, k=10, ef_values=(10, 200), seed=3)
    low, high = result["sweep"]
    assert 0.0 < low["recall_at_10"] <= high["recall_at_10"] <= 1.0
    assert high["recall_at_10"] >= 0.98, "a generous ef finds nearly all true neighbours"
    assert low["queries_per_s"] > 0 and result["items"] == 3_000


def test_wide_stream_caps_events_per_user_and_keeps_order() -> None:
    base = generate_events(generate_catalog(), n_users=3, events_per_user=30)
    out = wide_stream(base, 150, "x-", events_per_user=20)
    assert len(out) == 150 and len({e.event_id for e in out}) == 150
    per_user: dict[str, int] = {}
    for e in out:
        per_user[e.user_id] = per_user.get(e.user_id, 0) + 1
    assert max(per_user.values()) <= 20 and len(per_user) >= 150 // 20
    # One user per event when asked: the state-size run needs 100,000 distinct users.
    assert len({e.user_id for e in wide_stream(base, 100, "y-", events_per_user=1)}) == 100


def test_new_items_are_new_and_distinct() -> None:
    items = new_items(500, "t")
    assert len({i.item_id for i in items}) == 500 and len({i.title for i in items}) == 500
    assert not {i.item_id for i in items} & {i.item_id for i in generate_catalog()}


def test_interleaved_deals_users_round_robin_and_keeps_each_users_order() -> None:
    events = wide_stream(generate_events(generate_catalog(), n_users=10, events_per_user=30), 300, "x-")
    base = sorted(events, key=lambda e: e.user_id)  # each user's events together, as in a file sorted by user
    out = interleaved(base, block_users=1_000)
    assert sorted(e.event_id for e in out) == sorted(e.event_id for e in base), "the same events"
    for user in {e.user_id for e in base}:
        assert [e.event_id for e in out if e.user_id == user] == [e.event_id for e in base if e.user_id == user]
    assert consecutive_same_user(base) > 0.9 and consecutive_same_user(out) == 0.0
    # Dealt in blocks, time still moves forward: the first block's users come before any other user.
    first_users = list(dict.fromkeys(e.user_id for e in base))[:5]
    first_block = sum(1 for e in base if e.user_id in first_users)
    assert {e.user_id for e in interleaved(base, block_users=5)[:first_block]} == set(first_users)


def _seen(user: str, trigger: str, at: float) -> Seen:
    return Seen(user, {"user_id": user, "trigger_event_id": trigger}, 0, at)


def test_every_event_is_timed_by_the_first_list_that_reflects_it() -> None:
    events = [Event(event_id=f"e{i}", user_id=u, type=EventType.CLICK, item_id="i", ts=1) for i, u in enumerate("aabab")]
    sent = [0.0, 0.1, 0.2, 0.3, 0.4]
    # a's list for e1 covers e0 and e1; b's list for e4 covers e2 and e4; a's list for e3 covers e3 only.
    lists = [_seen("a", "e1", 1.0), _seen("b", "e4", 2.0), _seen("a", "e3", 3.0), _seen("a", "e3", 9.0)]
    got = event_latencies_ms(events, sent, lists)
    assert sorted(round(x) for x in got) == sorted([1000, 900, 1800, 1600, 2700])


def test_markdown_says_which_targets_were_missed_and_by_how_much() -> None:
    wide = {"events_per_s": 2_500.0, "lists_per_s": 2_400.0, "events": 40_000, "users": 3_000,
            "consecutive_same_user": 0.0, "broker_ceiling_events_per_s": 250_000.0,
            "faust_floor_events_per_s": 10_000.0, "loop_lag_p50_s": 0.0025, "loop_lag_p99_s": 0.02}
    files = {**wide, "events_per_s": 12_000.0, "lists_per_s": 1_500.0, "consecutive_same_user": 0.9}
    lat = {"latency_ms_p50": 10.0, "latency_ms_p95": 20.0, "latency_ms_p99": 40.0}
    out = {
        "machine": "test", "source": "generated", "catalog_items": 240, "plan": {"rate": 1000.0, "eval_fraction": 0.1},
        "throughput_runs": [wide, {**wide, "events_per_s": 2_000.0, "loop_lag_p99_s": 0.05},
                            {**wide, "events_per_s": 3_000.0, "loop_lag_p99_s": 0.01}],
        "file_order_runs": [files], "latency_runs": [lat], "latency_half_runs": [lat], "half_rate": 1_250.0,
        "items_fp32": [{"items_per_s": 150.0}], "items_int8": [{"items_per_s": 450.0}],
        "encoder_quality": {"fp32": 0.2, "int8": 0.199},
        "index": {"items": 100_000, "k": 50, "build_s": 60.0, "sweep": [
            {"ef_search": 64, "k": 50, "recall_at_10": 0.97, "recall_at_k": 0.9, "queries_per_s": 6000.0},
            {"ef_search": 128, "k": 50, "recall_at_10": 0.99, "recall_at_k": 0.95, "queries_per_s": 3000.0}]},
        "state": {"users": 100_000, "bytes_per_user": 900.0, "worker_rss_mb": 900.0},
        "state_histories": {"users": 610, "events_per_user_median": 70, "events_per_user_max": 2_700,
                            "bytes_per_user_mean": 3_000.0, "bytes_per_user_max": 9_000,
                            "by_history_length": {"20": {"bytes": 2_000}, "200": {"bytes": 4_000}, "1000": {"bytes": 8_000}}},
    }
    result = summarise(out)
    assert result["events_per_s"] == 2_500.0 and result["file_order_events_per_s"] == 12_000.0
    assert result["index_ef_search"] == 128 and result["index_ef_search_chosen"] == 128
    assert result["worker_share_of_ceiling"] == 0.01
    assert result["faust_floor_events_per_s"] == 10_000.0 and result["worker_share_of_faust_floor"] == 0.25
    text = markdown(result, "recstream bench")
    assert "2,500.0 (2,000.0–3,000.0)" in text
    assert "| worker's share of the Faust floor (wide) | 25.00% |" in text
    assert "**missed** (0.50× the target)" in text  # 2,500 of 5,000 events/s
    assert "**missed** (3.91× the target)" in text  # 8,000 bytes for a 1,000-event user
    assert "| p99 ≤ 20 | met |" in text and "2.5 / 20.0" in text  # the median run's p99 bound
    assert text.count("| met |") == 8
    assert TARGETS["events_per_s"] == 5_000 and TARGETS["file_order_events_per_s"] == 10_000
