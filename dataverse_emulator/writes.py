"""Writing records: create (POST), update and upsert (PATCH, also by alternate key) and delete, with the
platform's side effects and checks, in the service's order:

- columns parsed and type-checked (serialize.parse_write_body: read-only columns refused, `x@odata.bind: null`
  and `"nav": null` clear a lookup);
- system columns filled (owner, created/modified by, full name, a note's `objecttypecode`);
- state: `statecode` is not valid for create (the record starts in its table's default state and a
  `statuscode` is checked against it); on update the pair goes through states.resolve_change;
- alternate keys stay unique (keys.py); with `MSCRM.SuppressDuplicateDetection: false` the published
  duplicate rules are checked (detection.check_on_write: 500 0x80040333).
ETags (`If-Match`, `If-None-Match: *`) and `Prefer: return=representation` (with `$select`/`$expand`) as before.
"""

from __future__ import annotations

from typing import Any

from . import keys, states
from .context import Context
from .detection import check_on_write
from .entities import applied, context_url, record_json
from .errors import ServiceError, bad_request, not_found
from .prefer import Annotations, parse_prefer, suppress_detection
from .query import parse_options
from .schema import Entity
from .serialize import parse_write_body
from .store import Ref
from .wire import ApiRequest, ApiResponse, json_response, no_content

DUPLICATE_CODE = "0x80040237"
VERSION_MISMATCH_CODE = "0x80060882"


def system_values(ctx: Context, meta: Entity, values: dict[str, Any], creating: bool) -> None:
    """What the platform fills in: owner and creator/modifier, and a note's object type."""
    user = Ref("systemuser", ctx.caller_id)
    if ctx.store.get("systemuser", ctx.caller_id) is not None:
        if creating:
            for col in ("ownerid", "createdby"):
                if col in meta.attrs and values.get(col) is None:
                    values[col] = user
        if "modifiedby" in meta.attrs:
            values["modifiedby"] = user
    if "objecttypecode" in meta.attrs and "objectid" in values:
        ref = values["objectid"]
        values["objecttypecode"] = ref.entity if isinstance(ref, Ref) else None


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
    opts = parse_options(meta, params, collection=False, store=ctx.store)
    if prefs.get("return") != "representation":
        if opts.select is not None or opts.expand:
            raise bad_request("$select and $expand on a write need 'Prefer: return=representation'.")
        return no_content(headers)
    with ctx.store.lock:
        rec = ctx.store.require(meta.name, rid)
        body = record_json(ctx, meta, rec, opts, Annotations.from_prefs(prefs))
    payload = {"@odata.context": context_url(ctx, meta, opts, True), **body}
    return json_response(status, payload, {**headers, **applied(prefs, "return", "odata.include-annotations")})


def _checks(ctx: Context, req: ApiRequest, meta: Entity, record: dict[str, Any], rid: str) -> None:
    keys.check_unique(ctx.store, meta, record, rid)
    if not suppress_detection(req):
        check_on_write(ctx.store, meta, record, rid)


def insert_record(ctx: Context, req: ApiRequest, meta: Entity, body: Any, rid: str | None = None,
                  extra: dict[str, Any] | None = None) -> str:
    """Create one record from a JSON body (shared by POST, upsert and CreateMultiple). Callers hold the lock."""
    store = ctx.store
    if isinstance(body, dict) and "statecode" in body and "statecode" in meta.attrs:
        body = {k: v for k, v in body.items() if k != "statecode"}  # not valid for create: the default state
    values = parse_write_body(store, meta.name, body, for_update=False)
    given = values.pop(meta.primary_id, None)
    if rid is not None and given is not None and given != rid:
        raise bad_request(f"The {meta.primary_id} in the body ({given}) does not match the key in the URL ({rid}).")
    rid = rid or given
    if rid is not None and store.get(meta.name, rid) is not None:
        raise ServiceError(412, DUPLICATE_CODE, "A record with matching key values already exists.")
    values.update(extra or {})
    if "statecode" in meta.attrs:
        pair = states.default_pair(meta.name)
        values["statecode"], values["statuscode"] = states.resolve_change(
            meta.name, meta.schema_name, rid or "00000000-0000-0000-0000-000000000000", pair, None,
            values.get("statuscode"))
    system_values(ctx, meta, values, creating=True)
    _apply_full_name(meta, values, None)
    _checks(ctx, req, meta, values, rid or "")
    return store.insert(meta.name, values, rid)


def create(ctx: Context, req: ApiRequest, meta: Entity, params: list[tuple[str, str]], rid: str | None = None,
           extra: dict[str, Any] | None = None) -> ApiResponse:
    body = req.json_body()
    with ctx.store.lock:
        rid = insert_record(ctx, req, meta, body, rid, extra)
    headers = {"OData-EntityId": f"{ctx.api_url}{meta.set_name}({rid})"}
    return _representation(ctx, req, meta, rid, params, 201, headers)


def apply_update(ctx: Context, req: ApiRequest, meta: Entity, rid: str, body: Any) -> None:
    """Update one existing record from a JSON body (shared by PATCH and UpdateMultiple). Callers hold the lock."""
    store = ctx.store
    existing = store.require(meta.name, rid)
    if isinstance(body, dict) and str(body.get(meta.primary_id, "")).lower() == rid:
        body = {k: v for k, v in body.items() if k != meta.primary_id}
    values = parse_write_body(store, meta.name, body, for_update=True)
    if "statecode" in values or "statuscode" in values:
        current = (existing.get("statecode", 0), existing.get("statuscode", 1))
        values["statecode"], values["statuscode"] = states.resolve_change(
            meta.name, meta.schema_name, rid, current, values.get("statecode"), values.get("statuscode"))
    system_values(ctx, meta, values, creating=False)
    _apply_full_name(meta, values, existing)
    _checks(ctx, req, meta, {**existing, **values}, rid)
    store.update(meta.name, rid, values)


def update(ctx: Context, req: ApiRequest, meta: Entity, rid: str | None, params: list[tuple[str, str]],
           key_values: dict[str, Any] | None = None) -> ApiResponse:
    """PATCH: update, or create when missing (upsert) unless `If-Match` is sent. `rid` is None when the URL
    named an alternate key that matched nothing (`key_values` then go into the new record)."""
    if_match, if_none_match = req.header("if-match").strip(), req.header("if-none-match").strip()
    store = ctx.store
    with store.lock:
        existing = store.get(meta.name, rid) if rid is not None else None
        if existing is None:
            if if_match:
                if rid is None:
                    raise keys.not_found_by_key(meta.name)
                raise not_found(meta.name, rid)
            return create(ctx, req, meta, params, rid, key_values)
        if if_none_match == "*":
            raise ServiceError(412, DUPLICATE_CODE, "A record with matching key values already exists.")
        check_etag(existing, if_match)
        apply_update(ctx, req, meta, rid, req.json_body())  # type: ignore[arg-type]
    headers = {"OData-EntityId": f"{ctx.api_url}{meta.set_name}({rid})"}
    return _representation(ctx, req, meta, rid, params, 200, headers)  # type: ignore[arg-type]


def check_etag(record: dict[str, Any], if_match: str) -> None:
    if if_match and if_match != "*" and if_match != f'W/"{record.get("versionnumber")}"':
        raise ServiceError(412, VERSION_MISMATCH_CODE,
                           "The version of the existing record doesn't match the RowVersion property provided.")


def delete(ctx: Context, req: ApiRequest, meta: Entity, rid: str) -> ApiResponse:
    with ctx.store.lock:
        rec = ctx.store.get(meta.name, rid)
        if rec is None:
            raise not_found(meta.name, rid)
        check_etag(rec, req.header("if-match").strip())
        ctx.store.delete(meta.name, rid)
    return no_content()
