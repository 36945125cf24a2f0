"""Typed records for every message recstream reads or writes.

The JSON Schema files beside this module are the contract other languages use; these pydantic
models are the Python side of the same contract, and `tests/unit/schemas` checks that both accept
and reject the same documents.
"""

from __future__ import annotations

import json
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class EventType(StrEnum):
    CLICK = "click"
    BROWSE = "browse"
    PURCHASE = "purchase"
    SEARCH = "search"
    DISLIKE = "dislike"
    # Forget the user: state, list and table rows (see the README's "Erasing a user").
    ERASE = "erase"


_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)


class Event(BaseModel):
    """One user interaction (events topic, key = user_id)."""

    model_config = _STRICT

    event_id: str = Field(min_length=1, max_length=256)
    user_id: str = Field(min_length=1, max_length=256)
    type: EventType
    item_id: str | None = Field(default=None, min_length=1, max_length=256)
    query: str | None = None
    ts: int = Field(ge=0)

    @field_validator("ts", mode="before")
    @classmethod
    def _whole_float_is_an_integer(cls, value: Any) -> Any:
        """JSON Schema counts 1.0 as an integer; so do we (1.5 and "1" stay invalid)."""
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value

    @model_validator(mode="after")
    def _item_or_query(self) -> Event:
        if self.type is EventType.SEARCH:
            if not self.query:
                raise ValueError("a search event needs a non-empty 'query'")
        elif self.type is EventType.ERASE:
            pass
        elif self.item_id is None:
            raise ValueError(f"a {self.type.value} event needs an 'item_id'")
        return self


class Item(BaseModel):
    """A catalog entry (items topic, key = item_id)."""

    model_config = _STRICT

    item_id: str = Field(min_length=1, max_length=256)
    title: str | None = Field(default=None, max_length=1024)
    description: str | None = Field(default=None, max_length=8192)
    categories: list[Annotated[str, Field(max_length=256)]] = Field(default_factory=list, max_length=64)
    op: Literal["upsert", "delete"] = "upsert"

    @model_validator(mode="after")
    def _upsert_has_title(self) -> Item:
        if self.op == "upsert" and self.title is None:
            raise ValueError("an upsert needs a 'title'")
        return self

    def text(self) -> str:
        """The text the encoder embeds: the title carries most meaning, categories disambiguate."""
        parts = [self.title or ""]
        if self.categories:
            parts.append("Genres: " + ", ".join(self.categories))
        if self.description:
            parts.append(self.description)
        return ". ".join(parts)


class RecommendedItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item_id: str
    score: float
    reason: str


class Recommendation(BaseModel):
    """A user's fresh top-k list (recommendations topic, key = user_id)."""

    model_config = ConfigDict(extra="forbid")

    user_id: str
    items: list[RecommendedItem]
    trigger_event_id: str
    generated_at: int
    model_version: str
    # The user's experiment variant; lists published before variants existed lack it.
    variant: str = "default"
    # Candidates behind `items` for the read API's request filters (RECSTREAM_STORED_K); empty when none are kept.
    more: list[RecommendedItem] = Field(default_factory=list)
    # Only in read-API answers to request filters: fewer than the k asked for passed them.
    truncated: bool = False


@cache
def json_schema(name: Literal["event", "item", "recommendation"]) -> dict[str, Any]:
    """The shipped JSON Schema document, for validators outside Python or for a second opinion."""
    text = resources.files(__package__).joinpath(f"{name}.schema.json").read_text()
    return json.loads(text)
