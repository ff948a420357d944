"""The aiohttp application of `meterroot serve`: read-only JSON over an output directory.

Every answer carries a strong ETag (the sha256 of its body, or of the file served) and honours
If-None-Match with 304; lists are pages (`offset`, `limit` ≤ MAX_LIMIT, `next`); errors are
`{"error": {"status", "message"}}` with 400 for a bad parameter and 404 for what does not exist.
The document at /openapi.json describes every route.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from aiohttp import web

from settlement.addresses import AddressError, normalize_address
from settlement.errors import MeterrootError, UsageError
from sinks import reports
from sinks.api.published import NotFound, Published

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

BILL_SQL = """
SELECT batch, epoch, contract, provider, unit, quantity, amount_wei, protocol_fee_wei, provider_wei
FROM settlement_lines WHERE consumer = $consumer
ORDER BY batch, epoch, contract, provider, unit LIMIT $limit OFFSET $offset
"""
BILL_TOTAL_SQL = """
SELECT count(*) AS lines, CAST(coalesce(sum(amount_wei), 0) AS DECIMAL(38,0)) AS amount_wei,
       CAST(coalesce(sum(protocol_fee_wei), 0) AS DECIMAL(38,0)) AS protocol_fee_wei,
       CAST(coalesce(sum(provider_wei), 0) AS DECIMAL(38,0)) AS provider_wei
FROM settlement_lines WHERE consumer = $consumer
"""
REVENUE_SQL = """
SELECT * FROM ({report}) WHERE $provider IS NULL OR provider = $provider
ORDER BY provider_wei DESC, lower(provider) LIMIT $limit OFFSET $offset
"""
REVENUE_COUNT_SQL = "SELECT count(*) AS n FROM ({report}) WHERE $provider IS NULL OR provider = $provider"
AVAILABILITY_SQL = """
SELECT * FROM ({report}) WHERE ($provider IS NULL OR provider = $provider) AND ($epoch IS NULL OR epoch = $epoch)
ORDER BY provider, epoch LIMIT $limit OFFSET $offset
"""
AVAILABILITY_COUNT_SQL = """
SELECT count(*) AS n FROM ({report}) WHERE ($provider IS NULL OR provider = $provider)
  AND ($epoch IS NULL OR epoch = $epoch)
"""


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": {"status": status, "message": message}}, status=status)


@web.middleware
async def errors(request, handler):
    try:
        return await handler(request)
    except NotFound as exc:
        return _error(404, str(exc))
    except UsageError as exc:
        return _error(400, str(exc))
    except MeterrootError as exc:
        return _error(500, str(exc))


def _respond(request, body: bytes, etag: str, content_type: str = "application/json") -> web.Response:
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    wanted = request.headers.get("If-None-Match", "")
    if etag in [t.strip() for t in wanted.split(",")] or wanted.strip() == "*":
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, headers=headers, content_type=content_type)


def _json(request, data) -> web.Response:
    body = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    return _respond(request, body, '"' + hashlib.sha256(body).hexdigest() + '"')


def _int(request, name: str, default: int | None = None, low: int = 0, high: int | None = None) -> int | None:
    text = request.match_info.get(name) or request.query.get(name)
    if text is None or text == "":
        return default
    if not text.isascii() or not text.isdigit():
        raise UsageError(f"{name} must be a non-negative integer, got {text!r}")
    value = int(text)
    if value < low or (high is not None and value > high):
        raise UsageError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _address(request, name: str, required: bool = True) -> str | None:
    text = request.match_info.get(name) or request.query.get(name)
    if not text:
        if required:
            raise UsageError(f"{name} is required: a 0x address")
        return None
    try:
        return normalize_address(text)
    except AddressError as exc:
        raise UsageError(f"{name}: {exc}") from None


def _page(request, items: list, total: int, offset: int, limit: int) -> dict:
    following = offset + len(items)
    next_url = None
    if following < total:
        next_url = str(request.rel_url.update_query({"offset": following, "limit": limit}))
    return {"items": items, "offset": offset, "limit": limit, "total": total, "next": next_url}


def _paging(request) -> tuple[int, int]:
    return _int(request, "offset", 0), _int(request, "limit", DEFAULT_LIMIT, low=1, high=MAX_LIMIT)


def make_app(out: Path) -> web.Application:
    published = Published(out)
    routes = web.RouteTableDef()

    @routes.get("/openapi.json")
    async def openapi(request):
        return _json(request, OPENAPI)

    @routes.get("/health")
    async def health(request):
        return _json(request, {"status": "ok", "head": published.head()})

    @routes.get("/batches")
    async def batches(request):
        offset, limit = _paging(request)
        summaries = published.batch_summaries()
        return _json(request, _page(request, summaries[offset:offset + limit], len(summaries), offset, limit))

    @routes.get("/batches/{batch}")
    async def batch(request):
        number = _int(request, "batch", low=1)
        return _json(request, published.manifest(number))

    @routes.get("/batches/{batch}/manifest.json")
    async def manifest_file(request):
        raw = published.manifest_file(_int(request, "batch", low=1))
        return _respond(request, raw.data, raw.etag)

    @routes.get("/batches/{batch}/tree.json")
    async def tree_file(request):
        raw = published.tree_file(_int(request, "batch", low=1))
        return _respond(request, raw.data, raw.etag)

    @routes.get("/batches/{batch}/leaves")
    async def leaves(request):
        number = _int(request, "batch", low=1)
        offset, limit = _paging(request)
        items, total = published.leaves(number, offset, limit)
        return _json(request, _page(request, items, total, offset, limit))

    @routes.get("/batches/{batch}/proof")
    async def proof(request):
        number = _int(request, "batch", low=1)
        return _json(request, published.proof(number, _address(request, "consumer"), _address(request, "payee")))

    @routes.get("/bills/{consumer}")
    async def bill(request):
        consumer = _address(request, "consumer")
        offset, limit = _paging(request)
        totals = published.rows(BILL_TOTAL_SQL, {"consumer": consumer})[0]
        lines = published.rows(BILL_SQL, {"consumer": consumer, "limit": limit, "offset": offset})
        page = _page(request, lines, totals["lines"], offset, limit)
        return _json(request, {"consumer": consumer, "totals": totals, **page})

    async def revenue_page(request, provider):
        offset, limit = _paging(request)
        report = reports.PROVIDER_REVENUE_SQL
        params = {"provider": provider}
        total = published.rows(REVENUE_COUNT_SQL.format(report=report), params)[0]["n"]
        items = published.rows(REVENUE_SQL.format(report=report), {**params, "limit": limit, "offset": offset})
        return _page(request, items, total, offset, limit)

    @routes.get("/revenue")
    async def revenue(request):
        return _json(request, await revenue_page(request, _address(request, "provider", required=False)))

    @routes.get("/revenue/{provider}")
    async def provider_revenue(request):
        page = await revenue_page(request, _address(request, "provider"))
        if not page["items"]:
            raise NotFound(f"provider {request.match_info['provider']} has no settled revenue in this output")
        return _json(request, page["items"][0])

    async def availability_page(request, provider, epoch):
        offset, limit = _paging(request)
        report = reports.AVAILABILITY_LATEST_SQL
        params = {"provider": provider, "epoch": epoch}
        total = published.rows(AVAILABILITY_COUNT_SQL.format(report=report), params)[0]["n"]
        items = published.rows(AVAILABILITY_SQL.format(report=report), {**params, "limit": limit, "offset": offset})
        return _page(request, items, total, offset, limit)

    @routes.get("/availability")
    async def availability(request):
        provider = _address(request, "provider", required=False)
        return _json(request, await availability_page(request, provider, _int(request, "epoch")))

    @routes.get("/availability/{provider}/{epoch}")
    async def availability_of(request):
        provider, epoch = _address(request, "provider"), _int(request, "epoch")
        page = await availability_page(request, provider, epoch)
        if not page["items"]:
            raise NotFound(f"no availability for provider {provider} in epoch {epoch}: no probe of it "
                           "was settled")
        return _json(request, page["items"][0])

    app = web.Application(middlewares=[errors])
    app.add_routes(routes)
    app["published"] = published
    return app


def _op(summary: str, params: list, response: str = "JSON object") -> dict:
    return {"get": {"summary": summary, "parameters": params,
                    "responses": {"200": {"description": response},
                                  "304": {"description": "not modified (If-None-Match matched the ETag)"},
                                  "400": {"description": "a bad parameter", "content": {"application/json": {
                                      "schema": {"$ref": "#/components/schemas/Error"}}}},
                                  "404": {"description": "not in this output", "content": {"application/json": {
                                      "schema": {"$ref": "#/components/schemas/Error"}}}}}}}


def _param(name: str, where: str, kind: str = "string", required: bool = True, about: str = "") -> dict:
    schema = {"type": "integer", "minimum": 0} if kind == "integer" else {"type": "string"}
    if kind == "address":
        schema = {"type": "string", "pattern": "^0x[0-9a-fA-F]{40}$"}
    return {"name": name, "in": where, "required": required, "schema": schema, "description": about}


_PAGE = [_param("offset", "query", "integer", False, "first item (default 0)"),
         _param("limit", "query", "integer", False, f"items per page, 1..{MAX_LIMIT} (default {DEFAULT_LIMIT})")]
_BATCH = _param("batch", "path", "integer", True, "batch number, 1..HEAD")

OPENAPI = {
    "openapi": "3.1.0",
    "info": {"title": "meterroot serve", "version": "1",
             "description": "Read-only API over a meterroot output directory (SPEC §14): what a "
                            "registry's dataURI points at. Only batches up to the ledger HEAD exist."},
    "paths": {
        "/health": _op("the ledger HEAD batch", []),
        "/batches": _op("every committed batch, paged", _PAGE, "a page of batch summaries"),
        "/batches/{batch}": _op("a batch's manifest, parsed", [_BATCH]),
        "/batches/{batch}/manifest.json": _op("the manifest file, byte for byte (its keccak256 is the "
                                              "manifestHash committed on chain)", [_BATCH]),
        "/batches/{batch}/tree.json": _op("the OpenZeppelin standard-v1 tree dump, byte for byte", [_BATCH]),
        "/batches/{batch}/leaves": _op("the tree's leaf values, paged", [_BATCH] + _PAGE),
        "/batches/{batch}/proof": _op("the leaf of (consumer, payee) with its Merkle proof", [
            _BATCH, _param("consumer", "query", "address"), _param("payee", "query", "address")]),
        "/bills/{consumer}": _op("a consumer's settlement lines with totals, paged",
                                 [_param("consumer", "path", "address")] + _PAGE),
        "/revenue": _op("revenue per provider, paged",
                        [_param("provider", "query", "address", False)] + _PAGE),
        "/revenue/{provider}": _op("one provider's revenue", [_param("provider", "path", "address")]),
        "/availability": _op("availability per (provider, epoch): the latest batch's figure, paged", [
            _param("provider", "query", "address", False), _param("epoch", "query", "integer", False)] + _PAGE),
        "/availability/{provider}/{epoch}": _op("one provider's availability in one epoch", [
            _param("provider", "path", "address"), _param("epoch", "path", "integer")]),
        "/openapi.json": _op("this document", []),
    },
    "components": {"schemas": {"Error": {"type": "object", "properties": {"error": {
        "type": "object", "properties": {"status": {"type": "integer"}, "message": {"type": "string"}}}}}}},
}
