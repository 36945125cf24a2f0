"""The item index: an HNSW graph (hnswlib, cosine) plus the little each item needs for a reason.

Items are keyed by their string id; hnswlib wants integer labels, so the index owns that mapping.
Deletions are marks, not removals, so a deleted item can never come back as a candidate while
its label stays reserved for a later re-upsert.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import hnswlib
import numpy as np

INDEX_FILE = "items.hnsw"
META_FILE = "items.json"


def text_hash(text: str) -> str:
    """Unchanged text means an unchanged embedding: re-delivered items are not re-encoded."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=12).hexdigest()


@dataclass
class ItemMeta:
    item_id: str
    label: int
    title: str
    categories: list[str] = field(default_factory=list)
    text_hash: str = ""
    deleted: bool = False
    # The embedded text, so the catalog can be embedded again by another encoder without re-reading it.
    text: str = ""


class ItemIndex:
    def __init__(
        self,
        dim: int,
        *,
        capacity: int = 16_384,
        m: int = 16,
        ef_construction: int = 200,
        ef_search: int = 128,
    ) -> None:
        self.dim = dim
        self.ef_search = ef_search
        self._hnsw = hnswlib.Index(space="cosine", dim=dim)
        self._hnsw.init_index(max_elements=capacity, M=m, ef_construction=ef_construction, allow_replace_deleted=False)
        self._hnsw.set_ef(ef_search)
        self._meta: dict[str, ItemMeta] = {}
        self._by_label: list[ItemMeta] = []
        self._ids_by_label: np.ndarray | None = None
        self._live = 0
        # A copy of every vector by label: hnswlib's get_items is slow for the per-batch lookups.
        self._vecs = np.zeros((capacity, dim), dtype=np.float32)
        # Live (not deleted) by label: the batched ranking filters whole rows of candidates with it.
        self._live_mask = np.zeros(capacity, dtype=bool)

    # -- reading -----------------------------------------------------------------------------
    def __len__(self) -> int:
        """Number of live (not deleted) items: what can be recommended."""
        return self._live

    def __contains__(self, item_id: object) -> bool:
        meta = self._meta.get(item_id)  # type: ignore[arg-type]
        return meta is not None and not meta.deleted

    def meta(self, item_id: str) -> ItemMeta | None:
        return self._meta.get(item_id)

    def title(self, item_id: str) -> str:
        meta = self._meta.get(item_id)
        return meta.title if meta else item_id

    def is_deleted(self, item_id: str) -> bool:
        meta = self._meta.get(item_id)
        return meta is None or meta.deleted

    def needs_embedding(self, item_id: str, digest: str) -> bool:
        meta = self._meta.get(item_id)
        return meta is None or meta.text_hash != digest

    def vectors(self, item_ids: Sequence[str]) -> np.ndarray:
        """Stored unit vectors of live items, rows in the given order (hnswlib cannot read deleted ones)."""
        if not item_ids:
            return np.zeros((0, self.dim), dtype=np.float32)
        metas = [self._meta[i] for i in item_ids]
        deleted = [m.item_id for m in metas if m.deleted]
        if deleted:
            raise KeyError(f"items deleted from the catalog: {deleted[:5]}")
        return self._vecs[[m.label for m in metas]]

    def described(self) -> list[ItemMeta]:
        """A copy of every live item's description (for embedding the catalog again elsewhere)."""
        return [ItemMeta(**asdict(m)) for m in self._by_label if not m.deleted]

    def item_ids(self, live_only: bool = True) -> Iterable[str]:
        return (m.item_id for m in self._by_label if not (live_only and m.deleted))

    # -- by label: the batched ranking works on whole arrays indexed by label --------------------
    @property
    def n_labels(self) -> int:
        """Labels handed out so far (deleted items keep theirs): the width of a by-label array."""
        return len(self._by_label)

    def labels_of(self, item_ids: Iterable[str]) -> np.ndarray:
        """Each item's label, -1 for an item the index never held."""
        meta = self._meta
        return np.fromiter((m.label if (m := meta.get(i)) is not None else -1 for i in item_ids), dtype=np.int64)

    def ids_of_labels(self, labels: np.ndarray) -> list[str]:
        return self._label_ids()[labels].tolist()

    @property
    def live_mask(self) -> np.ndarray:
        """True where a label's item is live (a view; do not modify)."""
        return self._live_mask[: len(self._by_label)]

    @property
    def unit_vectors(self) -> np.ndarray:
        """Every label's unit vector (rows of deleted items are stale; mask them with `live_mask`)."""
        return self._vecs[: len(self._by_label)]

    # -- writing -----------------------------------------------------------------------------
    def upsert(self, item_id: str, title: str, categories: list[str], digest: str, vector: np.ndarray | None,
               text: str = "") -> None:
        """Add or update one item; `vector` may be None only when the text is unchanged."""
        meta = self._meta.get(item_id)
        if meta is None:
            if vector is None:
                raise ValueError(f"new item {item_id!r} needs a vector")
            meta = ItemMeta(item_id=item_id, label=len(self._by_label), title=title, categories=categories, text=text)
            self._ensure_capacity(meta.label + 1)
            self._hnsw.add_items(vector.reshape(1, -1), [meta.label])
            self._vecs[meta.label] = _unit_rows(vector.reshape(1, -1))[0]
            self._live_mask[meta.label] = True
            self._meta[item_id] = meta
            self._by_label.append(meta)
            self._live += 1
        else:
            if meta.deleted:
                self._hnsw.unmark_deleted(meta.label)
                meta.deleted = False
                self._live_mask[meta.label] = True
                self._live += 1
            if vector is not None:
                self._hnsw.add_items(vector.reshape(1, -1), [meta.label], replace_deleted=False)
                self._vecs[meta.label] = _unit_rows(vector.reshape(1, -1))[0]
            meta.title, meta.categories = title, categories
        meta.text_hash = digest
        meta.text = text or meta.text

    def add_new(self, item_ids: Sequence[str], vectors: np.ndarray, digests: Sequence[str] | None = None,
                described: Sequence[ItemMeta] | None = None) -> None:
        """Add items the index has never seen in one call: hnswlib inserts a batch in parallel.

        `described` (same order) gives each item's title, categories, text and digest, as when a
        catalog is embedded again by another encoder."""
        if len(item_ids) != vectors.shape[0]:
            raise ValueError(f"{len(item_ids)} ids but {vectors.shape[0]} vectors")
        known = [i for i in item_ids if i in self._meta]
        if known or len(set(item_ids)) != len(item_ids):
            raise ValueError(f"add_new takes new, distinct items only (known: {known[:5]})")
        start = len(self._by_label)
        metas = [
            ItemMeta(item_id=i, label=start + n, title=i, text_hash=digests[n] if digests else "")
            if described is None else
            ItemMeta(item_id=i, label=start + n, title=described[n].title, categories=list(described[n].categories),
                     text_hash=described[n].text_hash, text=described[n].text)
            for n, i in enumerate(item_ids)
        ]
        self._ensure_capacity(start + len(metas))
        self._hnsw.add_items(np.asarray(vectors, dtype=np.float32), [m.label for m in metas])
        self._vecs[start : start + len(metas)] = _unit_rows(vectors)
        self._live_mask[start : start + len(metas)] = True
        for m in metas:
            self._meta[m.item_id] = m
        self._by_label.extend(metas)
        self._live += len(metas)

    def set_threads(self, n: int) -> None:
        """Threads hnswlib may use for a batch of queries or inserts (-1: all cores)."""
        self._hnsw.set_num_threads(n)

    def delete(self, item_id: str) -> bool:
        meta = self._meta.get(item_id)
        if meta is None or meta.deleted:
            return False
        self._hnsw.mark_deleted(meta.label)
        meta.deleted = True
        self._live_mask[meta.label] = False
        self._live -= 1
        return True

    def _ensure_capacity(self, needed: int) -> None:
        capacity = self._hnsw.get_max_elements()
        if needed > capacity:
            self._hnsw.resize_index(max(needed, capacity * 2))
            grown = np.zeros((self._hnsw.get_max_elements(), self.dim), dtype=np.float32)
            grown[: len(self._vecs)] = self._vecs
            self._vecs = grown
            live = np.zeros(len(grown), dtype=bool)
            live[: len(self._live_mask)] = self._live_mask
            self._live_mask = live

    # -- querying ----------------------------------------------------------------------------
    def query(self, queries: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        """Nearest live items by cosine similarity for each query row, best first."""
        n = queries.shape[0]
        k = min(k, self._live)
        if n == 0 or k <= 0:
            return [[] for _ in range(n)]
        self._hnsw.set_ef(max(self.ef_search, k))
        labels, distances = self._hnsw.knn_query(np.asarray(queries, dtype=np.float32), k=k)
        # Whole-array lookups and conversions: per-element Python here cost a third of the query time.
        names = self._label_ids()[labels].tolist()
        sims = (1.0 - distances.astype(np.float64)).tolist()
        return [list(zip(row_n, row_s)) for row_n, row_s in zip(names, sims)]

    def _label_ids(self) -> np.ndarray:
        """Item id by label, as an array; labels only ever get appended, so a longer list means stale."""
        if self._ids_by_label is None or len(self._ids_by_label) != len(self._by_label):
            self._ids_by_label = np.array([m.item_id for m in self._by_label], dtype=object)
        return self._ids_by_label

    # -- persistence -------------------------------------------------------------------------
    def save(self, directory: Path, checkpoint: dict[str, Any]) -> None:
        """Write index and metadata atomically (temp folder, then rename) with the caller's checkpoint."""
        directory = Path(directory)
        tmp = directory.with_name(directory.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        self._hnsw.save_index(str(tmp / INDEX_FILE))
        doc = {
            "dim": self.dim,
            "ef_search": self.ef_search,
            "checkpoint": checkpoint,
            "items": [asdict(m) for m in self._by_label],
        }
        with open(tmp / META_FILE, "w", encoding="utf-8") as fh:
            json.dump(doc, fh)
            fh.flush()
            os.fsync(fh.fileno())
        old = directory.with_name(directory.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if directory.exists():
            directory.rename(old)
        tmp.rename(directory)
        shutil.rmtree(old, ignore_errors=True)

    @classmethod
    def load(cls, directory: Path) -> tuple[ItemIndex, dict[str, Any]]:
        directory = _saved_copy(Path(directory))
        with open(directory / META_FILE, encoding="utf-8") as fh:
            doc = json.load(fh)
        self = cls.__new__(cls)
        self.dim = int(doc["dim"])
        self.ef_search = int(doc["ef_search"])
        self._hnsw = hnswlib.Index(space="cosine", dim=self.dim)
        self._hnsw.load_index(str(directory / INDEX_FILE), allow_replace_deleted=False)
        self._hnsw.set_ef(self.ef_search)
        self._by_label = [ItemMeta(**m) for m in doc["items"]]
        self._ids_by_label = None
        self._meta = {m.item_id: m for m in self._by_label}
        self._vecs = np.zeros((self._hnsw.get_max_elements(), self.dim), dtype=np.float32)
        live = [m.label for m in self._by_label if not m.deleted]
        self._live_mask = np.zeros(len(self._vecs), dtype=bool)
        self._live_mask[live] = True
        if live:  # hnswlib cannot return deleted items; their rows are never read
            self._vecs[live] = self._hnsw.get_items(live, return_type="numpy")
        self._live = len(live)
        return self, dict(doc.get("checkpoint") or {})

    @staticmethod
    def exists(directory: Path) -> bool:
        found = _saved_copy(Path(directory))
        return (found / META_FILE).is_file() and (found / INDEX_FILE).is_file()


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    """What hnswlib's cosine space stores: each row scaled to unit length."""
    v = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(norms > 0, norms, 1.0)


def _saved_copy(directory: Path) -> Path:
    """A crash between the two renames in `save` leaves only the previous copy, under `.old`."""
    old = directory.with_name(directory.name + ".old")
    return old if not directory.exists() and old.exists() else directory
