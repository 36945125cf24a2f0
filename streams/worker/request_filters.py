"""Request filters of the read API: `?k=&exclude=&category=&exclude_category=` on a user's stored list.

A stored list holds the `items` subscribers received and, behind them, `more` candidates
(RECSTREAM_STORED_K) with their reasons, so a filter that removes some items can usually still answer
with k; when it cannot, the answer says so (`"truncated": true`). Filtering costs no ranking.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

PARAMETERS = ("k", "exclude", "category", "exclude_category")
# Most ids or categories one parameter may list.
MAX_VALUES = 1_000


class BadRequest(ValueError):
    """A filter parameter that cannot be used; the message says which and why (a 400 answer)."""


@dataclass(frozen=True)
class ListRequest:
    k: int | None = None
    exclude: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()  # keep items in any of these (case does not matter)
    exclude_categories: frozenset[str] = frozenset()

    @property
    def needs_categories(self) -> bool:
        return bool(self.categories or self.exclude_categories)


def parse_request(query: Mapping[str, str], max_k: int) -> ListRequest | None:
    """The filters a request asks for; None when it asks for none (the stored list is served as it is)."""
    unknown = sorted(set(query) - set(PARAMETERS))
    if unknown:
        raise BadRequest(f"unknown parameter(s) {', '.join(unknown)}; the list takes {', '.join(PARAMETERS)}")
    if not query:
        return None
    k = None
    if "k" in query:
        raw = query["k"]
        if not raw.isdigit() or not 1 <= int(raw) <= max_k:
            raise BadRequest(f"k must be a whole number from 1 to {max_k} (the items a list keeps), got {raw!r}")
        k = int(raw)
    return ListRequest(k, _values(query, "exclude"), _values(query, "category", fold=True),
                       _values(query, "exclude_category", fold=True))


def _values(query: Mapping[str, str], name: str, fold: bool = False) -> frozenset[str]:
    raw = query.get(name)
    if raw is None:
        return frozenset()
    values = [v.strip() for v in raw.split(",") if v.strip()]
    if not values:
        raise BadRequest(f"{name} is empty: give one or more comma-separated values, or leave it out")
    if len(values) > MAX_VALUES:
        raise BadRequest(f"{name} lists {len(values)} values; at most {MAX_VALUES}")
    return frozenset(v.casefold() if fold else v for v in values)


def filtered(
    doc: Mapping[str, Any], request: ListRequest,
    categories_of: Callable[[Iterable[str]], Mapping[str, Sequence[str]]],
) -> dict[str, Any]:
    """The stored list `doc` with the request's filters applied: its first k remaining items (k: the
    request's, else as many as the list shows), `more` left out, and whether fewer than k remained."""
    candidates = [*doc["items"], *doc.get("more", ())]
    categories = categories_of([i["item_id"] for i in candidates]) if request.needs_categories else {}

    def keep(item: Mapping[str, Any]) -> bool:
        if item["item_id"] in request.exclude:
            return False
        if not request.needs_categories:
            return True
        mine = {c.casefold() for c in categories.get(item["item_id"], ())}
        if mine & request.exclude_categories:
            return False
        return not request.categories or bool(mine & request.categories)

    k = request.k or len(doc["items"])
    kept = [item for item in candidates if keep(item)][:k]
    out = {key: value for key, value in doc.items() if key != "more"}
    out["items"] = kept
    out["truncated"] = len(kept) < k
    return out
