"""`recstream demo`: the whole product on one machine, end to end, in a couple of minutes."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import click

from schemas.records import Event, EventType, Item
from streams.client.display import format_list
from streams.client.reader import RecstreamReader
from streams.kafka.producing import Publisher, make_producer, publish_events, publish_items
from streams.kafka.watching import RecommendationWatcher
from streams.lab.sources import Source
from streams.lab.stack import LocalStack
from streams.settings import Settings

DEMO_ROOT = Path(".recstream/demo")
SCIFI_TITLES = ("Alien (1979)", "Blade Runner (1982)", "Star Wars: Episode IV - A New Hope (1977)")


def _say(text: str) -> None:
    click.secho(text, fg="cyan", bold=True)


def _scifi_picks(catalog: list[Item]) -> list[Item]:
    by_title = {i.title: i for i in catalog}
    picks = [by_title[t] for t in SCIFI_TITLES if t in by_title]
    if len(picks) < 3:
        picks = [i for i in catalog if "Sci-Fi" in i.categories][:3]
    return picks


def run_demo(settings: Settings, source: Source, limit: int, keep_running: bool = False) -> None:
    _say(f"recstream demo — data: {source.name}")
    catalog = source.items()
    events = source.events(limit if source.movielens else None)
    with LocalStack(DEMO_ROOT) as stack:
        _say(f"1. embedded broker up at {stack.bootstrap} (memory only; production uses Apache Kafka)")
        worker = stack.add_worker(fresh_state=True)
        local = settings.model_copy(update={"kafka_bootstrap": stack.bootstrap})
        publisher = Publisher(make_producer(local))
        _say(f"2. publishing {len(catalog)} catalog items; the worker embeds them with MiniLM (cached on later runs)")
        publish_items(publisher, local.topic_items, catalog)
        publisher.flush()
        _say("3. waiting for the worker: catalog indexed and consumer group joined (~30-60 s on the embedded broker)")
        worker.wait_ready(timeout=600)
        _say(f"4. replaying {len(events)} events")
        with RecommendationWatcher(local) as watcher:
            started = time.time()
            publish_events(publisher, local.topic_events, events)
            publisher.flush()
            if watcher.wait_for_trigger(events[-1].event_id, timeout=600) is None:
                raise TimeoutError("the worker did not answer the replay; see " + str(worker.log_path))
            took = time.time() - started
            _say(f"   {len(events)} events applied and answered in {took:.1f}s ({len(events) / took:.0f} events/s)")
            titles = {i.item_id: i.title or i.item_id for i in catalog}
            for user_id in list(dict.fromkeys(e.user_id for e in reversed(events)))[:2]:
                seen = watcher.latest.get(user_id)
                if seen:
                    click.echo(format_list(seen.value, titles))

            picks = _scifi_picks(catalog)
            user = f"demo-fan-{int(time.time())}"
            _say(f"5. a new user {user} buys three science-fiction films: " + ", ".join(p.title or "" for p in picks))
            now = int(time.time() * 1000)
            fresh = [
                Event(event_id=f"{user}-{n}", user_id=user, type=EventType.PURCHASE, item_id=p.item_id, ts=now + n)
                for n, p in enumerate(picks)
            ]
            sent = time.time()
            publish_events(publisher, local.topic_events, fresh)
            publisher.flush()
            seen = watcher.wait_for_trigger(fresh[-1].event_id, timeout=30)
            if seen is None:
                raise TimeoutError(f"no recommendations for {user}; see {worker.log_path}")
            click.echo(format_list(seen.value, titles))
            genres = {i.item_id: i.categories for i in catalog}
            scifi = sum("Sci-Fi" in genres.get(r["item_id"], []) for r in seen.value["items"])
            repeated = {r["item_id"] for r in seen.value["items"]} & {p.item_id for p in picks}
            _say(
                f"   answered {(seen.received_at - sent) * 1000:.0f} ms after the purchases were sent; "
                f"{scifi}/{len(seen.value['items'])} recommended items are Sci-Fi; "
                + (f"PURCHASED FILMS IN THE LIST: {sorted(repeated)}" if repeated else "none is a purchased film")
            )
        api = f"http://127.0.0.1:{worker.http_port}/recommendations/{user}"
        with urllib.request.urlopen(api, timeout=10) as resp:
            served = json.loads(resp.read())
        same = "the list just published" if served == seen.value else "AN OLDER LIST"
        _say(f"6. read API: GET {api} -> {len(served['items'])} items, {same} (from the worker's list cache)")
        reader = RecstreamReader(f"http://127.0.0.1:{worker.http_port}")
        _say(f"   GET /users/{user}/variant -> {reader.variant(user)!r} (RECSTREAM_VARIANTS: docs/experiments.md)")
        similar = reader.similar(picks[0].item_id, k=5) or []
        _say(f"   GET /items/{picks[0].item_id}/similar?k=5 ({picks[0].title}):")
        for item in similar:
            click.echo(f"     {titles.get(item.item_id, item.item_id)} — {item.reason}")
        url = f"http://127.0.0.1:{worker.metrics_port}/metrics"
        _say(f"7. Prometheus metrics: {url}   (`recstream recs USER_ID` reads any user's list from the topic)")
        if keep_running:
            _say(f"   running; RECSTREAM_KAFKA_BOOTSTRAP={stack.bootstrap} for other commands. Ctrl-C stops.")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    _say("done: broker and worker stopped")
