"""Entity-set requests: query a collection, and create, retrieve, update (with upsert and ETags) and delete one
record, with the Web API's status codes, headers and errors. Store access happens under store.lock.
"""

from __future__ import annotations

from typing import Any

from .context import Context
from .errors import ServiceError, bad_request, not_found
from .query import execute, next_link, parse_options, parse_prefer
from .schema import Entity
from .serialize import find_nav, parse_write_body, record_to_json
from .store import Ref
from .wire import ApiRequest, ApiResponse, json_response, no_content

DUPLICATE_CODE = "0x80040237"
VERSION_MISMATCH_CODE = "0x80060882"


def _annotations(prefs: dict[str, str]) -> bool:
    return bool(prefs.get("odata.include-annotations"))


def _applied(prefs: dict[str, str], *names: str) -> dict[str, str]:
    parts = []
    for name in names:
        if name in prefs:
            value = prefs[name]
            parts.append(f'{name}="{value}"' if name == "odata.include-annotations" else f"{name}={value}")
    return {"Preference-Applied": ",".join(parts)} if parts else {}


def _context_url(ctx: Context, meta: Entity, select: list[str] | None, entity: bool) -> str:
    cols = f"({','.join(select)})" if select else ""
    return f"{ctx.api_url}$metadata#{meta.set_name}{cols}" + ("/$entity" if entity else "")


def query_collection(ctx: Context, req: ApiRequest, meta: Entity, params: list[tuple[str, str]],
                     relative: str, raw_query: str) -> ApiResponse:
    prefs = parse_prefer(req.header("prefer"))
    opts = parse_options(meta, params)
    max_size = ctx.options.max_page_size
    if "odata.maxpagesize" in prefs:
        try:
            size = max(1, min(int(prefs["odata.maxpagesize"]), max_size))
        except ValueError:
            raise bad_request(f"Invalid odata.maxpagesize preference '{prefs['odata.maxpagesize']}'.") from None
        prefs["odata.maxpagesize"] = str(size)
        paged = True
    elif opts.top is not None:
        size, paged = min(opts.top, max_size), False
    else:
        size, paged = max_size, True
    annotations = _annotations(prefs)
    store = ctx.store
    with store.lock:
        page = execute(store, meta, opts, size, paged)
        rows = [record_to_json(store, meta.name, r, opts.select, annotations, ctx.api_url) for r in page.rows]
    body: dict[str, Any] = {"@odata.context": _context_url(ctx, meta, opts.select, False)}
    if opts.count:
        body["@odata.count"] = min(page.total, 5000)
        if annotations:
            body["@Microsoft.Dynamics.CRM.totalrecordcount"] = min(page.total, 5000)
            body["@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"] = page.total > 5000
    body["value"] = rows
    if page.next_skiptoken is not None:
        body["@odata.nextLink"] = next_link(ctx.api_url, relative, raw_query, page.next_skiptoken)
    return json_response(200, body, _applied(prefs, "odata.maxpagesize", "odata.include-annotations"))


def retrieve(ctx: Context, req: ApiRequest, meta: Entity, rid: str, params: list[tuple[str, str]]) -> ApiResponse:
    prefs = parse_prefer(req.header("prefer"))
    opts = parse_options(meta, params, collection=False)
    with ctx.store.lock:
        rec = ctx.store.get(meta.name, rid)
        if rec is None:
            raise not_found(meta.name, rid)
        body = record_to_json(ctx.store, meta.name, rec, opts.select, _annotations(prefs), ctx.api_url)
    payload = {"@odata.context": _context_url(ctx, meta, opts.select, True), **body}
    return json_response(200, payload, _applied(prefs, "odata.include-annotations"))


def _system_values(ctx: Context, meta: Entity, values: dict[str, Any], creating: bool) -> None:
    """What the platform fills in: owner and creator/modifier, and the computed full name."""
    user = Ref("systemuser", ctx.caller_id)
    if ctx.store.get("systemuser", ctx.caller_id) is not None:
        if creating:
            for col in ("ownerid", "createdby"):
                if col in meta.attrs and values.get(col) is None:
                    values[col] = user
        if "modifiedby" in meta.attrs:
            values["modifiedby"] = user


def _full_name(rec: dict[str, Any]) -> str | None:
    return " ".join(p for p in (rec.get("firstname"), rec.get("lastname")) if p) or None


def _apply_full_name(meta: Entity, values: dict[str, Any], before: dict[str, Any] | None) -> None:
    attr = meta.attrs.get("fullname")
    if attr is None or attr.creatable or "firstname" not in meta.attrs:
        return
    if before is None or "firstname" in values or "lastname" in values:
        values["fullname"] = _full_name({**(before or {}), **values})


def _representation(ctx: Context, req: ApiRequest, meta: Entity, rid: str, params: list[tuple[str, str]],
                    status: int, headers: dict[str, str]) -> ApiResponse:
    prefs = parse_prefer(req.header("prefer"))
    if prefs.get("return") != "representation":
        return no_content(headers)
    opts = parse_options(meta, params, collection=False)
    with ctx.store.lock:
        rec = ctx.store.require(meta.name, rid)
        body = record_to_json(ctx.store, meta.name, rec, opts.select, _annotations(prefs), ctx.api_url)
    payload = {"@odata.context": _context_url(ctx, meta, opts.select, True), **body}
    return json_response(status, payload, {**headers, **_applied(prefs, "return")})


def create(ctx: Context, req: ApiRequest, meta: Entity, params: list[tuple[str, str]],
           rid: str | None = None) -> ApiResponse:
    body = req.json_body()
    store = ctx.store
    with store.lock:
        values = parse_write_body(store, meta.name, body, for_update=False)
        given = values.pop(meta.primary_id, None)
        if rid is not None and given is not None and given != rid:
            raise bad_request(f"The {meta.primary_id} in the body ({given}) does not match the key in the URL ({rid}).")
        rid = rid or given
        if rid is not None and store.get(meta.name, rid) is not None:
            raise ServiceError(412, DUPLICATE_CODE, "A record with matching key values already exists.")
        _system_values(ctx, meta, values, creating=True)
        _apply_full_name(meta, values, None)
        rid = store.insert(meta.name, values, rid)
    headers = {"OData-EntityId": f"{ctx.api_url}{meta.set_name}({rid})"}
    return _representation(ctx, req, meta, rid, params, 201, headers)


def update(ctx: Context, req: ApiRequest, meta: Entity, rid: str, params: list[tuple[str, str]]) -> ApiResponse:
    """PATCH: update, or create when missing (upsert) unless `If-Match` is sent."""
    if_match, if_none_match = req.header("if-match").strip(), req.header("if-none-match").strip()
    store = ctx.store
    with store.lock:
        existing = store.get(meta.name, rid)
        if existing is None:
            if if_match:
                raise not_found(meta.name, rid)
            return create(ctx, req, meta, params, rid)
        if if_none_match == "*":
            raise ServiceError(412, DUPLICATE_CODE, "A record with matching key values already exists.")
        _check_etag(existing, if_match)
        body = req.json_body()
        if isinstance(body, dict) and str(body.get(meta.primary_id, "")).lower() == rid:
            body = {k: v for k, v in body.items() if k != meta.primary_id}
        values = parse_write_body(store, meta.name, body, for_update=True)
        _system_values(ctx, meta, values, creating=False)
        _apply_full_name(meta, values, existing)
        store.update(meta.name, rid, values)
    headers = {"OData-EntityId": f"{ctx.api_url}{meta.set_name}({rid})"}
    return _representation(ctx, req, meta, rid, params, 200, headers)


def _check_etag(record: dict[str, Any], if_match: str) -> None:
    if if_match and if_match != "*" and if_match != f'W/"{record.get("versionnumber")}"':
        raise ServiceError(412, VERSION_MISMATCH_CODE,
                           "The version of the existing record doesn't match the RowVersion property provided.")


def delete(ctx: Context, req: ApiRequest, meta: Entity, rid: str) -> ApiResponse:
    with ctx.store.lock:
        rec = ctx.store.get(meta.name, rid)
        if rec is None:
            raise not_found(meta.name, rid)
        _check_etag(rec, req.header("if-match").strip())
        ctx.store.delete(meta.name, rid)
    return no_content()


def delete_reference(ctx: Context, meta: Entity, rid: str, nav: str) -> ApiResponse:
    """`DELETE {set}(id)/{nav}/$ref`: clear a single-valued lookup (how Dataverse disassociates)."""
    found = find_nav(meta, nav)
    if found is None:
        raise bad_request(f"Resource not found for the segment '{nav}'.")
    attr, target = found
    if not attr.updatable:
        raise bad_request(f"The navigation property '{nav}' cannot be changed (IsValidForUpdate is false).")
    with ctx.store.lock:
        rec = ctx.store.get(meta.name, rid)
        if rec is None:
            raise not_found(meta.name, rid)
        current = rec.get(attr.name)
        if isinstance(current, Ref) and current.entity == target:
            values: dict[str, Any] = {attr.name: None}
            _system_values(ctx, meta, values, creating=False)
            ctx.store.update(meta.name, rid, values)
    return no_content()
