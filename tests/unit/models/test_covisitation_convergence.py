"""How far apart two workers' co-visitation ends up once rows are pruned.

Every worker applies every co-visit, but the events partitions interleave differently on each.
Applying is commutative (forward-decayed sums) until a row passes twice `covis_row_limit`
neighbours; `_prune` then keeps the strongest *so far*, and which weak pairs fall out depends on
the interleaving. So the workers do not hold identical rows. This measures how much that matters,
on rows that really pass the threshold, for what users receive: the co-visitation top 10 of each
user, computed from each worker's store. README "Co-visitation across workers" quotes the bound.
"""

from __future__ import annotations

import random
from types import SimpleNamespace

import numpy as np

from models.covisitation import CoVisit, CoVisitation, anchors_of, visit_for
from models.params import CoreParams
from schemas.records import Event, EventType

PARAMS = CoreParams()
PARTITIONS = 4
ITEMS = 2_500
USERS = 1_200
EVENTS_PER_USER = 25
HOUR_MS = 3_600_000


def partition_streams(seed: int = 11) -> tuple[list[list[CoVisit]], list[tuple[tuple[str, str], ...]]]:
    """Each events partition's co-visits, in that partition's order, and each user's history at the end.

    Users browse in sessions over a catalog whose popularity is skewed (Zipf), with tastes that
    cluster, so popular items' rows collect many more than 400 distinct neighbours."""
    rng = random.Random(seed)
    weights = [1.0 / (rank + 1) ** 0.9 for rank in range(ITEMS)]
    streams: list[list[CoVisit]] = [[] for _ in range(PARTITIONS)]
    histories = []
    for u in range(USERS):
        taste = rng.randrange(ITEMS)
        recent: list[tuple[str, str]] = []
        ts = rng.randrange(30 * 24) * HOUR_MS
        for _ in range(EVENTS_PER_USER):
            if rng.random() < 0.5:
                item = rng.choices(range(ITEMS), weights)[0]
            else:
                item = (taste + int(rng.gauss(0, 40))) % ITEMS
            ts += rng.randrange(1, 3 * HOUR_MS)
            event = Event(event_id=f"e{u}-{ts}", user_id=f"u{u}", type=EventType.CLICK, item_id=f"i{item}", ts=ts)
            visit = visit_for(SimpleNamespace(recent=tuple(recent)), event, PARAMS)  # type: ignore[arg-type]
            assert visit is not None
            streams[u % PARTITIONS].append(visit)
            recent = (recent + [(f"i{item}", EventType.CLICK.value)])[-PARAMS.recent_items :]
        histories.append(tuple(recent))
    return streams, histories


def interleave(streams: list[list[CoVisit]], seed: int) -> list[CoVisit]:
    """One worker's view: the partitions merged in a random order, each partition's own order kept."""
    rng = random.Random(seed)
    cursors = [0] * len(streams)
    out: list[CoVisit] = []
    live = [p for p in range(len(streams)) if streams[p]]
    while live:
        p = rng.choice(live)
        # Fetches deliver runs of a partition, not single records.
        run = rng.randrange(1, 200)
        out.extend(streams[p][cursors[p] : cursors[p] + run])
        cursors[p] += run
        if cursors[p] >= len(streams[p]):
            live.remove(p)
    return out


def applied(visits: list[CoVisit], params: CoreParams = PARAMS) -> CoVisitation:
    covis = CoVisitation(params)
    for visit in visits:
        covis.apply(visit)
    return covis


def top10(covis: CoVisitation, anchor_lists: list[list[tuple[str, float]]]) -> list[set[str]]:
    scores = covis.anchor_scores(anchor_lists).scores.tocsr()
    out = []
    for u in range(len(anchor_lists)):
        row = scores.getrow(u)
        best = row.indices[np.argsort(-row.data, kind="stable")[:10]]
        out.append({covis.name(int(i)) for i in best})
    return out


def test_two_interleavings_give_nearly_the_same_lists_once_rows_are_pruned() -> None:
    streams, histories = partition_streams()
    a, b = applied(interleave(streams, seed=1)), applied(interleave(streams, seed=2))
    unpruned = applied(interleave(streams, seed=1), CoreParams(covis_row_limit=10**9))

    # The rows really pass the pruning threshold (else this would measure nothing).
    widest = max(len(unpruned.neighbours(unpruned.name(i))) for i in range(len(unpruned)))
    assert widest > 2 * PARAMS.covis_row_limit, widest

    # Every user's anchors at the end of the stream, as the ranking takes them.
    anchor_lists = [anchors_of(SimpleNamespace(recent=h), PARAMS) for h in histories]  # type: ignore[arg-type]

    lists_a, lists_b, lists_true = top10(a, anchor_lists), top10(b, anchor_lists), top10(unpruned, anchor_lists)
    between = np.mean([len(x & y) / 10 for x, y in zip(lists_a, lists_b)])
    to_truth = np.mean([len(x & y) / 10 for x, y in zip(lists_a, lists_true)])
    identical = np.mean([x == y for x, y in zip(lists_a, lists_b)])
    print(f"\nwidest unpruned row {widest}; top-10 overlap between workers {between:.3f} "
          f"(identical lists {identical:.1%}); with unpruned rows {to_truth:.3f}")
    assert between >= 0.95
    assert to_truth >= 0.9
