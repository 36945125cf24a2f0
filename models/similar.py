"""Items similar to one item: what people went on to after it, blended with what reads like it.

Co-visitation gives the item's neighbours in behaviour (its pair row, damped by each neighbour's
popularity as lists are, scaled so the strongest is 1); the item's text embedding gives its nearest
items in the HNSW index. An item nobody has interacted with yet has no pairs, so its content
neighbours carry it at full weight (as content-led users' lists do): a new item has neighbours the
moment it is embedded.
"""

from __future__ import annotations

import numpy as np

from models.covisitation import CoVisitation
from models.index import ItemIndex
from models.params import CoreParams
from models.ranking import Scored


def similar_items(item_id: str, index: ItemIndex, covis: CoVisitation, params: CoreParams, k: int) -> list[Scored] | None:
    """The `k` items most similar to `item_id`, best first, each with its reason; None when the
    catalog does not have the item (never had it, or it was deleted)."""
    if item_id not in index:  # never had it, or deleted
        return None
    title = index.title(item_id)
    co = _covisited(item_id, index, covis, params)
    content = dict(index.query(index.vectors([item_id]), k + params.content_candidates + 1)[0])
    content.pop(item_id, None)
    w_content = params.w_content if co else params.w_content_led
    scores: dict[str, tuple[float, str]] = {}
    for other in co.keys() | content.keys():
        c, s = co.get(other, 0.0), w_content * max(0.0, content.get(other, 0.0))
        if c <= 0 and s <= 0:
            continue
        why = f"people who watched {title} went on to this" if c >= s else f"similar to {title}"
        scores[other] = (c + s, why)
    best = sorted(scores.items(), key=lambda kv: (-kv[1][0], kv[0]))[:k]
    return [Scored(other, round(score, 4), why) for other, (score, why) in best]


def _covisited(item_id: str, index: ItemIndex, covis: CoVisitation, params: CoreParams) -> dict[str, float]:
    """Live catalog neighbours in behaviour, pair weight / count**candidate_norm, the strongest at 1."""
    row = {other: weight for other, weight in covis.neighbours(item_id).items()
           if other != item_id and other in index and weight > 0}
    if not row:
        return {}
    counts = np.array([covis.count(other) for other in row])
    damped = np.array(list(row.values())) / np.power(np.maximum(counts, 1e-12), params.candidate_norm)
    top = float(damped.max())
    return {other: float(v) / top for other, v in zip(row, damped)} if top > 0 else {}
