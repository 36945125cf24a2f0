"""A recommendation list as a person reads it: one line per item with its score and reason."""

from __future__ import annotations

import time
from typing import Any


def format_list(value: dict[str, Any], titles: dict[str, str] | None = None) -> str:
    age_ms = int(time.time() * 1000) - int(value["generated_at"])
    lines = [f"user {value['user_id']}  ({len(value['items'])} items, {value['model_version']}, "
             f"generated {age_ms / 1000:.1f}s ago after event {value['trigger_event_id']})"]
    for rank, item in enumerate(value["items"], 1):
        name = (titles or {}).get(item["item_id"], item["item_id"])
        lines.append(f"  {rank:>2}. {name:<48} {item['score']:.3f}  {item['reason']}")
    return "\n".join(lines)
