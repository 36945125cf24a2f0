"""Applying catalog changes to the item index: embed what changed, mark what was deleted.

Split in two so the service can run the slow part (encoding) off its event loop:
`texts_to_embed` says what must be encoded, `apply` puts the result in the index in order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from models.encoder import Encoder
from models.index import ItemIndex, ItemMeta, text_hash
from schemas.records import Item


@dataclass
class CatalogUpdate:
    upserted: list[str]
    deleted: list[str]
    embedded: int


class Catalog:
    def __init__(self, index: ItemIndex, encoder: Encoder) -> None:
        if index.dim != encoder.dim:
            raise ValueError(f"index has dimension {index.dim} but the encoder makes {encoder.dim}")
        self.index = index
        self.encoder = encoder

    def texts_to_embed(self, items: Sequence[Item]) -> dict[str, str]:
        """Digest -> text for upserts whose text the index does not hold yet (deduplicated)."""
        todo: dict[str, str] = {}
        for item in items:
            if item.op == "upsert":
                text = item.text()
                digest = text_hash(text)
                if digest not in todo and self.index.needs_embedding(item.item_id, digest):
                    todo[digest] = text
        return todo

    def embed(self, todo: Mapping[str, str]) -> dict[str, np.ndarray]:
        vectors = self.encoder.encode(list(todo.values()))
        return dict(zip(todo.keys(), vectors))

    def apply(self, items: Sequence[Item], vectors: Mapping[str, np.ndarray]) -> CatalogUpdate:
        """Apply in log order, so an upsert followed by a delete of the same item ends deleted."""
        update = CatalogUpdate(upserted=[], deleted=[], embedded=len(vectors))
        for item in items:
            if item.op == "delete":
                if self.index.delete(item.item_id):
                    update.deleted.append(item.item_id)
                continue
            digest = text_hash(item.text())
            vector = vectors.get(digest) if self.index.needs_embedding(item.item_id, digest) else None
            self.index.upsert(item.item_id, item.title or item.item_id, list(item.categories), digest, vector,
                              text=item.text())
            update.upserted.append(item.item_id)
        return update

    def ingest(self, items: Sequence[Item]) -> CatalogUpdate:
        """Encode and apply in one call, for in-process use (evaluation, tests, bulk loads)."""
        return self.apply(items, self.embed(self.texts_to_embed(items)))


def embedded_again(described: Sequence[ItemMeta], encoder: Encoder, chunk: int = 512,
                   progress: Callable[[int, int], None] | None = None) -> ItemIndex:
    """A new index of the same items, every text embedded by `encoder` (a new encoder version).

    The old index keeps serving meanwhile: this touches only its copy of the items' descriptions.
    An item saved before texts were kept in the index is embedded from its title and categories."""
    texts = [m.text or Item(item_id=m.item_id, title=m.title, categories=m.categories).text() for m in described]
    parts = []
    for start in range(0, len(texts), chunk):
        parts.append(encoder.encode(texts[start : start + chunk]))
        if progress is not None:
            progress(min(start + chunk, len(texts)), len(texts))
    index = ItemIndex(encoder.dim, capacity=max(16_384, 2 * len(described)))
    if described:
        index.add_new([m.item_id for m in described], np.concatenate(parts), described=described)
    return index
