"""Streaming item co-visitation and popularity: what people interact with after what, and now.

State keyed by item cannot live with the users (events are partitioned by user), so the owner of
a user only *describes* what an event adds (`visit_for` -> `CoVisit`); every worker applies every
`CoVisit` to its own `CoVisitation`. Applying is order-independent: weights use forward decay
(an event at time t adds 2**((t - t0) / half_life)), so two workers that applied the same visits
in different orders hold the same numbers, and a late event weighs what its own time says. The
exception is pruning (`_prune`): which weak pairs a long row drops depends on what had arrived;
tests/unit/models/test_covisitation_convergence.py measures what that does to users' lists.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse

from models.interest import UserState
from models.params import CoreParams
from schemas.records import Event, EventType

_NOT_VISITS = (EventType.SEARCH, EventType.DISLIKE, EventType.ERASE)
# t0 is always a multiple of this many (shorter) half-lives, chosen from the newest event seen, so
# it depends only on *which* visits were applied, never on their order; exponents stay below ~2**300.
_EPOCH_HALF_LIVES = 300.0


@dataclass(frozen=True)
class CoVisit:
    """What one applied item event adds to the shared statistics."""

    item_id: str
    ts: int
    # Earlier items of the same user, newest first, with the pair weight (1 / distance).
    before: tuple[tuple[str, float], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"item_id": self.item_id, "ts": self.ts, "before": [list(p) for p in self.before]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CoVisit:
        before = tuple((str(item), float(w)) for item, w in data.get("before", ()))
        return cls(item_id=str(data["item_id"]), ts=int(data["ts"]), before=before)


def visit_for(state: UserState, event: Event, params: CoreParams) -> CoVisit | None:
    """The co-visitation an event adds, computed from the user's history *before* the event.

    Searches have no item and dislikes are not endorsements, so neither adds anything.
    """
    if event.type in _NOT_VISITS or event.item_id is None:
        return None
    before: list[tuple[str, float]] = []
    taken = {event.item_id}
    for distance, (item_id, kind) in enumerate(reversed(state.recent[-params.covis_window :]), start=1):
        if kind == EventType.DISLIKE.value or item_id in taken:
            continue
        taken.add(item_id)
        before.append((item_id, 1.0 / distance))
    return CoVisit(event.item_id, event.ts, tuple(before))


def anchors_of(state: UserState, params: CoreParams) -> list[tuple[str, float]]:
    """The user's newest distinct liked-or-seen items with their recency weight (newest = 1)."""
    out: list[tuple[str, float]] = []
    seen: set[str] = set()
    for item_id, kind in reversed(state.recent):
        if kind == EventType.DISLIKE.value or item_id in seen:
            continue
        seen.add(item_id)
        out.append((item_id, params.anchor_decay ** len(out)))
        if len(out) == params.covis_anchors:
            break
    return out


@dataclass(frozen=True)
class AnchorScores:
    """`CoVisitation.anchor_scores` for a batch of users (u) over dense item ids (c)."""

    # (users x items) co-visitation score, only where positive.
    scores: sparse.csr_matrix
    # (anchor rows x items) the raw pair weights of every anchor used, column indices sorted.
    rows: sparse.csr_matrix
    # (users x anchor slots) which row of `rows` is the user's i-th anchor (-1: no evidence), its
    # dense id, and its recency weight: together they say which anchor explains an item.
    slot_row: np.ndarray
    slot_id: np.ndarray
    slot_weight: np.ndarray

    def pair_keys(self) -> np.ndarray:
        """row * (number of dense ids) + item id of every entry of `rows`, ascending: with
        `np.searchsorted` a whole batch's pair lookups are one call."""
        per_row = np.diff(self.rows.indptr)
        return np.repeat(np.arange(len(per_row), dtype=np.int64), per_row) * self.rows.shape[1] + self.rows.indices


class _Row:
    """One item's neighbours as parallel numpy arrays (scored without a Python loop) plus a
    position map for in-place updates."""

    __slots__ = ("ids", "values", "pos")

    def __init__(self) -> None:
        self.ids = np.zeros(8, dtype=np.int64)
        self.values = np.zeros(8, dtype=np.float64)
        self.pos: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.pos)

    def add(self, j: int, w: float) -> None:
        p = self.pos.get(j)
        if p is None:
            p = self.pos[j] = len(self.pos)
            if p == len(self.ids):
                self.ids = np.concatenate([self.ids, np.zeros_like(self.ids)])
                self.values = np.concatenate([self.values, np.zeros_like(self.values)])
            self.ids[p] = j
        self.values[p] += w

    def get(self, j: int) -> float:
        p = self.pos.get(j)
        return 0.0 if p is None else float(self.values[p])

    def live(self) -> tuple[np.ndarray, np.ndarray]:
        n = len(self.pos)
        return self.ids[:n], self.values[:n]

    def items(self) -> list[tuple[int, float]]:
        ids, values = self.live()
        return list(zip(ids.tolist(), values.tolist()))

    def keep_strongest(self, limit: int) -> None:
        ids, values = self.live()
        keep = np.argsort(-values, kind="stable")[:limit]
        self.ids, self.values = ids[keep].copy(), values[keep].copy()
        self.pos = {int(j): p for p, j in enumerate(self.ids)}


class CoVisitation:
    """Decayed pair weights (item -> item), item counts and item popularity.

    Every number is stored forward-decayed relative to `t0`, so comparing two stored numbers of
    one kind compares their present values: no pass over the data is needed as time moves on.
    Items are interned to dense ints so scoring is a few numpy calls, not a Python loop per pair.
    """

    def __init__(self, params: CoreParams) -> None:
        self.params = params
        self._ids: dict[str, int] = {}
        self._names: list[str] = []
        self._pairs: list[_Row] = []
        self._counts = np.zeros(1024, dtype=np.float64)
        self._popularity = np.zeros(1024, dtype=np.float64)
        self._t0_s: float | None = None
        self._dirty: set[int] = set()
        self.applied = 0
        # Per source (events partition): the highest source offset applied, so a re-published visit
        # (its worker crashed before committing) is recognised and applied only once.
        self.applied_upto: dict[int, int] = {}

    # -- ids ---------------------------------------------------------------------------------
    def id_of(self, item_id: str) -> int:
        """The dense id of an item, allocated on first sight."""
        i = self._ids.get(item_id)
        if i is None:
            i = self._ids[item_id] = len(self._names)
            self._names.append(item_id)
            self._pairs.append(_Row())
            if i >= len(self._counts):
                self._counts = np.concatenate([self._counts, np.zeros_like(self._counts)])
                self._popularity = np.concatenate([self._popularity, np.zeros_like(self._popularity)])
        return i

    def ids_of(self, item_ids: Iterable[str]) -> np.ndarray:
        return np.fromiter((self.id_of(i) for i in item_ids), dtype=np.int64)

    def name(self, i: int) -> str:
        return self._names[i]

    def __len__(self) -> int:
        return len(self._names)

    # -- writing -----------------------------------------------------------------------------
    def apply(self, visit: CoVisit) -> None:
        ts_s = visit.ts / 1000.0
        epoch = self._epoch(ts_s)
        if self._t0_s is None:
            self._t0_s = epoch
        elif epoch > self._t0_s:
            self._rescale(epoch)
        exp_c = (ts_s - self._t0_s) / self.params.covis_half_life_s
        exp_p = (ts_s - self._t0_s) / self.params.popularity_half_life_s
        gain_c = 2.0**exp_c
        b = self.id_of(visit.item_id)
        self._counts[b] += gain_c
        self._popularity[b] += 2.0**exp_p
        self._dirty.add(b)
        backward = self.params.covis_backward
        row_b = self._pairs[b]
        for earlier, weight in visit.before:
            a = self.id_of(earlier)
            w = weight * gain_c
            row_a = self._pairs[a]
            row_a.add(b, w)
            if backward:
                row_b.add(a, backward * w)
            self._prune(row_a)
            self._dirty.add(a)
        self._prune(row_b)
        self.applied += 1

    def apply_once(self, visit: CoVisit, source: int, offset: int) -> bool:
        """Apply a visit that came from event `offset` of events partition `source`, unless it was.

        A source's visits arrive in offset order (one covisits partition per source), so one
        high-water mark per source is enough.
        """
        if offset <= self.applied_upto.get(source, -1):
            return False
        self.apply(visit)
        self.applied_upto[source] = offset
        return True

    def _prune(self, row: _Row) -> None:
        """Keep the strongest neighbours; pruning at twice the limit amortises the sort."""
        if len(row) > 2 * self.params.covis_row_limit:
            row.keep_strongest(self.params.covis_row_limit)

    def _epoch(self, ts_s: float) -> float:
        length = _EPOCH_HALF_LIVES * min(self.params.covis_half_life_s, self.params.popularity_half_life_s)
        return math.floor(ts_s / length) * length

    def _rescale(self, ts_s: float) -> None:
        """Move t0 forward to `ts_s`: every stored number shrinks by its decay over the shift."""
        assert self._t0_s is not None
        shift = ts_s - self._t0_s
        f_c = 2.0 ** (-shift / self.params.covis_half_life_s)
        for row in self._pairs:
            row.values *= f_c
        self._counts *= f_c
        self._popularity *= 2.0 ** (-shift / self.params.popularity_half_life_s)
        self._t0_s = ts_s
        self._dirty.update(range(len(self._names)))

    # -- reading -----------------------------------------------------------------------------
    def count(self, item_id: str) -> float:
        i = self._ids.get(item_id)
        return 0.0 if i is None else float(self._counts[i])

    def popularity(self, item_id: str) -> float:
        i = self._ids.get(item_id)
        return 0.0 if i is None else float(self._popularity[i])

    @property
    def counts(self) -> np.ndarray:
        """Decayed interaction counts by dense id (a view; do not modify)."""
        return self._counts[: len(self._names)]

    @property
    def popularities(self) -> np.ndarray:
        return self._popularity[: len(self._names)]

    def pair(self, a: str, b: str) -> float:
        ia, ib = self._ids.get(a), self._ids.get(b)
        return 0.0 if ia is None or ib is None else self._pairs[ia].get(ib)

    def neighbours(self, item_id: str) -> dict[str, float]:
        i = self._ids.get(item_id)
        return {} if i is None else {self._names[j]: v for j, v in self._pairs[i].items()}

    def scores(self, anchors: Sequence[tuple[str, float]]) -> np.ndarray:
        """One user's co-visitation score of every item, by dense id (0 where unreached)."""
        return self.anchor_scores([anchors]).scores.toarray()[0]

    def anchor_scores(
        self, anchor_lists: Sequence[Sequence[tuple[str, float]]], params: CoreParams | None = None
    ) -> AnchorScores:
        """Co-visitation scores of many users at once: one sparse product of their anchor weights
        with the pair rows of every anchor they name.

        score(u, c) = sum_a w_ua * pair(a, c) / count(a)**anchor_norm / count(c)**candidate_norm.
        Sparse because a user's anchors reach a few hundred items of a catalog of any size.
        `params` scores for an experiment variant; the store's own by default.
        """
        scoring = params or self.params
        counts = self._counts
        slots = max((len(a) for a in anchor_lists), default=0)
        slot_row = np.full((len(anchor_lists), slots), -1, dtype=np.int64)
        slot_id = np.full((len(anchor_lists), slots), -1, dtype=np.int64)
        slot_weight = np.zeros((len(anchor_lists), slots), dtype=np.float64)
        row_of: dict[int, int] = {}
        row_ids: list[np.ndarray] = []
        row_values: list[np.ndarray] = []
        w_rows: list[int] = []
        w_values: list[float] = []
        w_indptr = [0]
        for u, anchors in enumerate(anchor_lists):
            for slot, (anchor, weight) in enumerate(anchors):
                a = self._ids.get(anchor)
                # An item never visited here (its visits predate the topic's retention) has pairs but no
                # count to damp them by: it is no evidence, not infinite evidence.
                if a is None or counts[a] <= 0 or not len(self._pairs[a]):
                    continue
                r = row_of.get(a)
                if r is None:
                    r = row_of[a] = len(row_ids)
                    ids, values = self._pairs[a].live()
                    row_ids.append(ids)
                    row_values.append(values)
                slot_row[u, slot], slot_id[u, slot], slot_weight[u, slot] = r, a, weight
                w_rows.append(r)
                w_values.append(weight / counts[a] ** scoring.anchor_norm)
            w_indptr.append(len(w_rows))
        n = len(self._names)
        indptr = np.zeros(len(row_ids) + 1, dtype=np.int64)
        np.cumsum([len(ids) for ids in row_ids], out=indptr[1:])
        rows = sparse.csr_matrix(
            (np.concatenate(row_values) if row_values else np.zeros(0),
             np.concatenate(row_ids) if row_ids else np.zeros(0, dtype=np.int64), indptr),
            shape=(len(row_ids), n),
        )
        rows.sort_indices()
        weights = sparse.csr_matrix((np.asarray(w_values, dtype=np.float64), np.asarray(w_rows, dtype=np.int64),
                                     np.asarray(w_indptr, dtype=np.int64)), shape=(len(anchor_lists), len(row_ids)))
        scores = weights @ rows
        reach = self.counts
        damp = np.zeros(n)
        np.power(reach, -scoring.candidate_norm, out=damp, where=reach > 0)
        scores.data *= damp[scores.indices]
        scores.eliminate_zeros()  # unreached (count 0) and underflowed candidates
        return AnchorScores(scores, rows, slot_row, slot_id, slot_weight)

    def popular_ids(self, allowed: np.ndarray | None = None, params: CoreParams | None = None) -> np.ndarray:
        """Dense ids of the `popular_candidates` most popular items right now, most popular first.

        `allowed` (a mask over dense ids) keeps the others out: ranking passes the items that are in
        the catalog now, so an id the catalog never had, or deleted, can neither take a candidate's
        place nor set the popularity normaliser.
        """
        pop = self.popularities if allowed is None else np.where(allowed, self.popularities, 0.0)
        n = min((params or self.params).popular_candidates, int((pop > 0).sum()))
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        part = np.argpartition(-pop, n - 1)[:n]
        return part[np.argsort(-pop[part], kind="stable")]

    # -- persistence -------------------------------------------------------------------------
    def take_dirty(self) -> dict[str, dict[str, Any]]:
        """Records of the items changed since the last call, for writing to a store."""
        out = {self._names[i]: self._record(i) for i in self._dirty}
        self._dirty.clear()
        return out

    def record(self, item_id: str) -> dict[str, Any]:
        return self._record(self.id_of(item_id))

    def _record(self, i: int) -> dict[str, Any]:
        return {
            "count": float(self._counts[i]),
            "popularity": float(self._popularity[i]),
            "pairs": {self._names[j]: v for j, v in self._pairs[i].items()},
        }

    @property
    def t0_s(self) -> float | None:
        return self._t0_s

    def restore(
        self,
        t0_s: float | None,
        records: Iterable[tuple[str, Mapping[str, Any]]],
        applied_upto: Mapping[int, int] | None = None,
    ) -> None:
        """Rebuild from `record`s written earlier with the same t0 (a worker restart)."""
        self.__init__(self.params)  # type: ignore[misc]
        self._t0_s = t0_s
        self.applied_upto = dict(applied_upto or {})
        for item, rec in records:
            i = self.id_of(item)
            self._counts[i] = float(rec.get("count", 0.0))
            self._popularity[i] = float(rec.get("popularity", 0.0))
            for other, v in rec.get("pairs", {}).items():
                self._pairs[i].add(self.id_of(other), float(v))
        self._dirty.clear()
