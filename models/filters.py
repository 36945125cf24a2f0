"""What may never be recommended, in one place: items the user purchased or disliked, deleted items."""

from __future__ import annotations

from typing import Iterable, Iterator, TypeVar

from models.index import ItemIndex
from models.interest import UserState

T = TypeVar("T", bound=tuple)


def is_allowed(item_id: str, state: UserState, index: ItemIndex) -> bool:
    return item_id not in state.excluded and item_id in index


def allowed(candidates: Iterable[T], state: UserState, index: ItemIndex) -> Iterator[T]:
    """Keeps candidates (tuples whose first field is the item id) that pass every filter, in order."""
    return (c for c in candidates if is_allowed(c[0], state, index))
