"""Reading from the workers' HTTP read API: a user's latest list and their experiment variant.

Any worker answers (it forwards list requests to the owner of the user's partition), so `url` can
be one worker or a load balancer in front of them all. Standard library only.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from typing import Any

from schemas.records import Recommendation, RecommendedItem

DEFAULT_URL = "http://127.0.0.1:6066"


class ReadFailed(RuntimeError):
    """The read API answered with an error, or could not be reached; `status` is the HTTP status (0: no answer)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class RecstreamReader:
    """`RecstreamReader("http://worker:6066", token=...)`: `recommendations(user)`, `variant(user)`,
    `similar(item, k)`."""

    def __init__(self, url: str = DEFAULT_URL, *, token: str | None = None, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def recommendations(
        self, user_id: str, *, k: int | None = None, exclude: Iterable[str] = (), category: Iterable[str] = (),
        exclude_category: Iterable[str] = (),
    ) -> Recommendation | None:
        """The list last published for the user; None when they have none (no events yet, or erased).

        Filters (any of them): `k` items, none of the `exclude` ids, only items in one of `category`,
        none in `exclude_category`; `truncated` on the answer says fewer than k passed."""
        query = {name: ",".join(values) for name, values in (("exclude", exclude), ("category", category),
                                                            ("exclude_category", exclude_category)) if values}
        if k is not None:
            query["k"] = str(int(k))
        path = f"/recommendations/{urllib.parse.quote(user_id, safe='')}"
        doc = self._get(path + (f"?{urllib.parse.urlencode(query)}" if query else ""), missing_ok=True)
        return None if doc is None else Recommendation.model_validate(doc)

    def variant(self, user_id: str) -> str:
        """The user's experiment variant (`default` when the workers run no experiment)."""
        doc = self._get(f"/users/{urllib.parse.quote(user_id, safe='')}/variant")
        assert doc is not None
        return str(doc["variant"])

    def similar(self, item_id: str, k: int = 10) -> list[RecommendedItem] | None:
        """The `k` items most similar to `item_id`, each with its reason; None when the catalog lacks it."""
        doc = self._get(f"/items/{urllib.parse.quote(item_id, safe='')}/similar?k={int(k)}", missing_ok=True)
        return None if doc is None else [RecommendedItem.model_validate(i) for i in doc["items"]]

    def _get(self, path: str, missing_ok: bool = False) -> dict[str, Any] | None:
        request = urllib.request.Request(self.url + path)
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 404 and missing_ok:
                return None
            try:
                detail = json.loads(exc.read()).get("error", exc.reason)
            except (ValueError, AttributeError):
                detail = exc.reason
            raise ReadFailed(exc.code, f"{self.url}{path} answered {exc.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ReadFailed(0, f"{self.url} did not answer ({reason}); is a worker running there "
                                "(RECSTREAM_HTTP_PORT)?") from None
