"""Reading records: query a collection (OData options, or `fetchXml`/`savedQuery`/`userQuery`, or `$apply`)
and retrieve one record, with the Web API's status codes, headers and annotations. Store access happens under
store.lock. Writes are in writes.py, navigation paths in navigation.py.

Paging: `Prefer: odata.maxpagesize` pages with a paging-cookie `@odata.nextLink`. With `$top` the answer is at
most `$top` rows and never pages: `$top` wins over `odata.maxpagesize`, which is then not applied (a live
observation, settled-2026-11.md Q3; Microsoft's pages disagree, see README Unverified).
"""

from __future__ import annotations

from typing import Any

from . import aggregate, fetchquery
from .context import Context
from .errors import bad_request, not_found
from .expand import context_suffix, expand_record
from .prefer import Annotations, applied, if_none_match, parse_prefer
from .query import QueryOptions, execute, next_link, parse_options
from .schema import Entity
from .serialize import record_to_json
from .wire import ApiRequest, ApiResponse, json_response

TOTAL_COUNT = "Microsoft.Dynamics.CRM.totalrecordcount"
COUNT_EXCEEDED = "Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"
VIEW_PARAMETERS = ("fetchXml", "savedQuery", "userQuery")


def context_url(ctx: Context, meta: Entity, opts: QueryOptions | None, entity: bool) -> str:
    cols = context_suffix(opts.select, opts.expand) if opts is not None else ""
    return f"{ctx.api_url}$metadata#{meta.set_name}{cols}" + ("/$entity" if entity else "")


def record_json(ctx: Context, meta: Entity, record: dict[str, Any], opts: QueryOptions,
                annotations: Annotations) -> dict[str, Any]:
    """One record with its `$select` and `$expand` applied. Callers hold store.lock."""
    out = record_to_json(ctx.store, meta.name, record, opts.select, annotations, ctx.api_url)
    if opts.expand:
        expand_record(ctx.store, meta, record, out, opts.expand, annotations, ctx.api_url)
    return out


def page_size(ctx: Context, prefs: dict[str, str], opts: QueryOptions) -> tuple[int, bool]:
    """(rows per answer, whether it pages). `$top` wins over maxpagesize (then not applied)."""
    max_size = ctx.options.max_page_size
    if opts.top is not None:
        prefs.pop("odata.maxpagesize", None)
        return min(opts.top, max_size), False
    if "odata.maxpagesize" in prefs:
        try:
            size = max(1, min(int(prefs["odata.maxpagesize"]), max_size))
        except ValueError:
            raise bad_request(f"Invalid odata.maxpagesize preference '{prefs['odata.maxpagesize']}'.") from None
        prefs["odata.maxpagesize"] = str(size)
        return size, True
    return max_size, True


def query_collection(ctx: Context, req: ApiRequest, meta: Entity, params: list[tuple[str, str]],
                     relative: str, raw_query: str) -> ApiResponse:
    names = {k for k, _ in params}
    if names & set(VIEW_PARAMETERS):
        return fetchquery.answer(ctx, req, meta, params)
    if "$apply" in names:
        return aggregate.answer(ctx, req, meta, params)
    prefs = parse_prefer(req.header("prefer"))
    opts = parse_options(meta, params, store=ctx.store)
    size, paged = page_size(ctx, prefs, opts)
    annotations = Annotations.from_prefs(prefs)
    store = ctx.store
    with store.lock:
        page = execute(store, meta, opts, size, paged)
        rows = [record_json(ctx, meta, r, opts, annotations) for r in page.rows]
    body: dict[str, Any] = {"@odata.context": context_url(ctx, meta, opts, False)}
    if opts.count:
        body["@odata.count"] = min(page.total, 5000)
        if annotations.wants(TOTAL_COUNT):
            body["@" + TOTAL_COUNT] = min(page.total, 5000)
        if annotations.wants(COUNT_EXCEEDED):
            body["@" + COUNT_EXCEEDED] = page.total > 5000
    body["value"] = rows
    if page.next_skiptoken is not None:
        body["@odata.nextLink"] = next_link(ctx.api_url, relative, raw_query, page.next_skiptoken)
    return json_response(200, body, applied(prefs, "odata.maxpagesize", "odata.include-annotations"))


def etag_of(record: dict[str, Any]) -> str:
    return f'W/"{record.get("versionnumber")}"'


def retrieve(ctx: Context, req: ApiRequest, meta: Entity, rid: str, params: list[tuple[str, str]]) -> ApiResponse:
    prefs = parse_prefer(req.header("prefer"))
    if req.header("if-match"):
        raise bad_request("If-Match is not supported on GET by the emulator (use If-None-Match).")
    opts = parse_options(meta, params, collection=False, store=ctx.store)
    annotations = Annotations.from_prefs(prefs)
    with ctx.store.lock:
        rec = ctx.store.get(meta.name, rid)
        if rec is None:
            raise not_found(meta.name, rid)
        wanted = if_none_match(req)
        if wanted and wanted in ("*", etag_of(rec)):
            return ApiResponse(304, {"ETag": etag_of(rec)})
        body = record_json(ctx, meta, rec, opts, annotations)
    payload = {"@odata.context": context_url(ctx, meta, opts, True), **body}
    return json_response(200, payload, {"ETag": etag_of(rec), **applied(prefs, "odata.include-annotations")})


__all__ = ["applied", "context_url", "page_size", "query_collection", "record_json", "retrieve"]
