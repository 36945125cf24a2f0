"""The worker's read API: a user's latest list over HTTP, health and readiness, and its OpenAPI description.

Lists are served from the worker's list cache (streams/worker/list_cache.py: written as lists are
published, and filled from the recommendations topic for a partition taken over), so a read
costs no ranking. A user's list lives on
the worker that owns their partition; a request that reaches another worker is forwarded there
(Faust's assignor tells every worker who owns what), so clients can call any worker, for instance
through one load balancer.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import aiohttp
from faust.exceptions import SameNode
from faust.types import AppT, TableT
from faust.web import Request, Response, View
from faust.web.exceptions import WebError

from models.params import CoreParams
from models.ranking import Scored
from models.variants import Experiment
from schemas.records import json_schema
from streams.worker.list_cache import ListCache, Lookup
from streams.worker.request_filters import BadRequest, filtered, parse_request

SERVED_BY = "Recstream-Served-By"
# Set on a request one worker forwards to another: a worker that would forward it again answers 503.
FORWARDED_BY = "Recstream-Forwarded-By"
FORWARD_TIMEOUT_S = 5.0
# Most similar items one request may ask for.
MAX_SIMILAR = 100

Similar = Callable[[str, int], Awaitable["list[Scored] | None"]]
Categories = Callable[[Iterable[str]], Awaitable[Mapping[str, Sequence[str]]]]


def authorised(headers: Mapping[str, str], token: str | None) -> bool:
    """Whether a request may read lists: always without a token, else only with `Bearer <token>`."""
    if token is None:
        return True
    scheme, _, given = headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def add_read_api(app: AppT, lists: ListCache, routing_table: TableT, is_ready: Callable[[], bool], worker_id: str,
                 token: str | None = None, experiment: Experiment | None = None, similar: Similar | None = None,
                 categories_of: Categories | None = None, max_k: int = 20) -> None:
    """`routing_table`: any table partitioned like the events topic; Faust's router finds a key's
    owner by a table's name. With a `token`, lists and variants are served only to requests that bear
    it (the reasons say what a user bought); health, readiness and the OpenAPI description stay open."""
    experiment = experiment or Experiment.single(CoreParams())

    @app.page("/users/{user_id}/variant")
    async def variant(view: View, request: Request, user_id: str) -> Response:
        """The user's experiment variant. Every worker gives the same answer without asking another:
        it is a hash of the experiment's salt and the user id (models/variants.py)."""
        if not authorised(request.headers, token):
            return view.error(401, "missing or wrong bearer token: send the header 'Authorization: Bearer TOKEN' "
                                   "with the token the workers were given (RECSTREAM_HTTP_TOKEN)")
        chosen = experiment.variant_of(user_id)
        return view.json({"user_id": user_id, "variant": chosen.name, "overrides": dict(chosen.overrides)},
                         headers={SERVED_BY: worker_id})

    @app.page("/recommendations/{user_id}")
    async def recommendations(view: View, request: Request, user_id: str) -> Response:
        """The user's latest published list, with reasons (404 until they have one); `?k=&exclude=&category=
        &exclude_category=` filter it (streams/worker/request_filters.py)."""
        if not authorised(request.headers, token):
            return view.error(401, "missing or wrong bearer token: send the header 'Authorization: Bearer TOKEN' "
                                   "with the token the workers were given (RECSTREAM_HTTP_TOKEN)")
        try:
            wanted = parse_request(dict(request.query), max_k)
        except BadRequest as exc:
            return view.error(400, str(exc))
        if not is_ready():
            return view.error(503, "this worker is still restoring its state or loading the catalog; retry shortly")
        try:
            owner = app.router.key_store(routing_table.name, user_id.encode())
        except KeyError:
            return view.error(503, "partition owners are not known yet (the group is rebalancing); retry shortly")
        try:
            if owner.host is not None and _same_node(owner, app.conf.canonical_url):
                raise SameNode()
            forwarded_by = request.headers.get(FORWARDED_BY)
            if forwarded_by is not None:
                return view.error(503, f"worker {forwarded_by} forwarded this request here, but this worker "
                                       f"({worker_id}) sees {owner} as the owner of the user's partition: the "
                                       "workers disagree about who owns what (a rebalance); retry shortly",
                                  user_id=user_id)
            return await _forward(app, view, request, owner, worker_id)
        except SameNode:
            pass
        except WebError as exc:
            return view.error(exc.code, exc.detail)
        found, value = lists.lookup(user_id)
        if found is Lookup.FOUND and wanted is not None:
            doc = json.loads(value)
            known: Mapping[str, Sequence[str]] = {}
            if wanted.needs_categories:
                if categories_of is None:
                    return view.error(503, "this worker does not know item categories yet; retry shortly")
                known = await categories_of([i["item_id"] for i in [*doc["items"], *doc.get("more", ())]])
            return view.json(filtered(doc, wanted, lambda ids: known), headers={SERVED_BY: worker_id})
        if found is Lookup.FOUND:
            return view.bytes(value, content_type="application/json", headers={SERVED_BY: worker_id})
        if found is Lookup.ABSENT:
            return view.error(404, f"no recommendations for user {user_id!r} yet: they have no applied events "
                                   "(or were erased)", user_id=user_id)
        return view.error(503, "this worker is still reading the lists of a partition it just took over; "
                               "retry shortly", user_id=user_id)

    @app.page("/items/{item_id}/similar")
    async def similar_items(view: View, request: Request, item_id: str) -> Response:
        """Items similar to one item, each with a reason. Any worker answers: every worker holds the whole
        catalog and all co-visitation."""
        if not authorised(request.headers, token):
            return view.error(401, "missing or wrong bearer token: send the header 'Authorization: Bearer TOKEN' "
                                   "with the token the workers were given (RECSTREAM_HTTP_TOKEN)")
        raw = request.query.get("k", "10")
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_SIMILAR:
            return view.error(400, f"k must be a whole number from 1 to {MAX_SIMILAR}, got {raw!r}")
        if similar is None or not is_ready():
            return view.error(503, "this worker is still restoring its state or loading the catalog; retry shortly")
        found = await similar(item_id, int(raw))
        if found is None:
            return view.error(404, f"no item {item_id!r} in the catalog: never published, or deleted", item_id=item_id)
        return view.json({"item_id": item_id,
                          "items": [{"item_id": s.item_id, "score": s.score, "reason": s.reason} for s in found]},
                         headers={SERVED_BY: worker_id})

    @app.page("/healthz")
    async def healthz(view: View, request: Request) -> Response:
        """The process is up and serving HTTP."""
        return view.json({"status": "ok", "worker": worker_id})

    @app.page("/readyz")
    async def readyz(view: View, request: Request) -> Response:
        """Ready once the state is restored, the item index loaded, co-visitation caught up with its
        topic and the owned partitions' lists read."""
        if is_ready():
            return view.json({"status": "ready", "worker": worker_id})
        return view.error(503, "not ready: restoring state, loading the catalog, catching up on co-visits or reading lists", worker=worker_id)

    @app.page("/openapi.json")
    async def openapi(view: View, request: Request) -> Response:
        """This API's OpenAPI 3.1 description."""
        return view.json(openapi_document())


def _same_node(a: Any, b: Any) -> bool:
    return (a.host, a.port) == (b.host, b.port)


async def _forward(app: AppT, view: View, request: Request, owner: Any, worker_id: str) -> Response:
    """The owner's answer, status and body as they are; a JSON error when the owner cannot be reached.

    The request goes on with its credentials and a mark that it was forwarded once: the owner
    serves it or answers 503, never forwards it again, so a disagreement about owners cannot loop."""
    url = request.url.with_host(owner.host).with_port(int(owner.port))
    onward = {FORWARDED_BY: worker_id}
    if "Authorization" in request.headers:
        onward["Authorization"] = request.headers["Authorization"]
    try:
        async with app.http_client.get(url, headers=onward,
                                       timeout=aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_S)) as resp:
            body = await resp.read()
            headers = {SERVED_BY: resp.headers[SERVED_BY]} if SERVED_BY in resp.headers else None
            return view.bytes(body, content_type=resp.content_type, status=resp.status, headers=headers)
    except (aiohttp.ClientError, TimeoutError) as exc:
        return view.error(502, f"the worker owning this user's partition ({owner}) did not answer: {exc!r}; "
                               "retry, it may be restarting")


def openapi_document() -> dict[str, Any]:
    error = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
    recommendation = {k: v for k, v in json_schema("recommendation").items() if not k.startswith("$")}

    def answer(description: str, schema: dict[str, Any]) -> dict[str, Any]:
        return {"description": description, "content": {"application/json": {"schema": schema}}}

    status = {"type": "object", "properties": {"status": {"type": "string"}, "worker": {"type": "string"}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "recstream read API", "version": "1",
                 "description": "Latest recommendation lists, served by any recstream worker."},
        "paths": {
            "/recommendations/{user_id}": {"get": {
                "summary": "A user's latest list, with the reason for each item; optionally filtered",
                "parameters": [
                    {"name": "user_id", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"name": "k", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1},
                     "description": "Items wanted (at most RECSTREAM_STORED_K or RECSTREAM_TOP_K, the larger)"},
                    {"name": "exclude", "in": "query", "required": False, "schema": {"type": "string"},
                     "description": "Comma-separated item ids never to return"},
                    {"name": "category", "in": "query", "required": False, "schema": {"type": "string"},
                     "description": "Comma-separated categories: only items in one of them (case does not matter)"},
                    {"name": "exclude_category", "in": "query", "required": False, "schema": {"type": "string"},
                     "description": "Comma-separated categories: no item in any of them"},
                ],
                "security": [{}, {"bearer": []}],
                "responses": {
                    "200": answer("The list last published for the user; with filters, its first k items that pass "
                                  "them (`truncated` when fewer did), without `more`",
                                  {"$ref": "#/components/schemas/Recommendation"}),
                    "400": answer("A filter parameter is wrong (the message says which)", {"$ref": "#/components/schemas/Error"}),
                    "401": answer("The workers require a bearer token (RECSTREAM_HTTP_TOKEN) and this request lacks it",
                                  {"$ref": "#/components/schemas/Error"}),
                    "404": answer("The user has no list (no applied events, or erased)", {"$ref": "#/components/schemas/Error"}),
                    "502": answer("The worker owning the user's partition did not answer", {"$ref": "#/components/schemas/Error"}),
                    "503": answer("Not ready, rebalancing, or the partition just taken over: retry", {"$ref": "#/components/schemas/Error"}),
                },
            }},
            "/users/{user_id}/variant": {"get": {
                "summary": "The user's experiment variant (the same on every worker)",
                "parameters": [{"name": "user_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "security": [{}, {"bearer": []}],
                "responses": {
                    "200": answer("The variant and the CoreParams it overrides", {
                        "type": "object", "required": ["user_id", "variant", "overrides"],
                        "properties": {"user_id": {"type": "string"}, "variant": {"type": "string"},
                                       "overrides": {"type": "object"}}}),
                    "401": answer("The workers require a bearer token (RECSTREAM_HTTP_TOKEN) and this request lacks it",
                                  {"$ref": "#/components/schemas/Error"}),
                },
            }},
            "/items/{item_id}/similar": {"get": {
                "summary": "Items similar to an item: what people went on to after it, and what reads like it",
                "parameters": [{"name": "item_id", "in": "path", "required": True, "schema": {"type": "string"}},
                               {"name": "k", "in": "query", "required": False,
                                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_SIMILAR, "default": 10}}],
                "security": [{}, {"bearer": []}],
                "responses": {
                    "200": answer("The most similar items, best first, each with its reason", {
                        "type": "object", "required": ["item_id", "items"],
                        "properties": {"item_id": {"type": "string"},
                                       "items": recommendation["properties"]["items"]}}),
                    "400": answer("k is not a whole number from 1 to 100", {"$ref": "#/components/schemas/Error"}),
                    "401": answer("The workers require a bearer token (RECSTREAM_HTTP_TOKEN) and this request lacks it",
                                  {"$ref": "#/components/schemas/Error"}),
                    "404": answer("The catalog does not have the item", {"$ref": "#/components/schemas/Error"}),
                    "503": answer("Not ready yet: retry", {"$ref": "#/components/schemas/Error"}),
                },
            }},
            "/healthz": {"get": {"summary": "Liveness", "responses": {"200": answer("Up", status)}}},
            "/readyz": {"get": {"summary": "Readiness: state restored, catalog loaded, co-visits caught up, lists read", "responses": {
                "200": answer("Ready", status), "503": answer("Not ready yet", {"$ref": "#/components/schemas/Error"})}}},
            "/openapi.json": {"get": {"summary": "This description", "responses": {"200": answer("OpenAPI 3.1", {"type": "object"})}}},
        },
        "components": {"schemas": {"Recommendation": recommendation, "Error": error},
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
