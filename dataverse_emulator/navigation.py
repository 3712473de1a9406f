"""Navigation paths under a record (associate-disassociate-entities-using-web-api.md, join-tables.md):

- `GET {set}({id})/{single nav}`: the related record (204 when the lookup is empty);
- `GET {set}({id})/{collection nav}`: the related rows, with `$select`, `$filter`, `$orderby`, `$top`,
  `$expand` and paging, as an entity set (what `<nav>@odata.nextLink` of an expanded collection points at);
- `PUT {set}({id})/{single nav}/$ref` with `{"@odata.id": ...}`: set the lookup;
- `DELETE {set}({id})/{single nav}/$ref`: clear it;
- `POST {set}({id})/{collection nav}/$ref` with `{"@odata.id": ...}`: point the related row at this record;
- `DELETE {set}({id})/{collection nav}({related id})/$ref` or `.../{collection nav}/$ref?$id=...`: clear the
  related row's lookup when it points here.
Many-to-many navigation properties (`listcontact_association`) are refused: use AddMemberList.
"""

from __future__ import annotations

import re
from typing import Any

from .context import Context
from .entities import applied, page_size, record_json
from .entityref import resolve_odata_id
from .errors import bad_request, not_found
from .odata import Filter
from .prefer import Annotations, parse_prefer
from .query import execute, next_link, parse_options
from .relationships import OneToMany, collection_nav, many_to_many_nav
from .schema import SCHEMA, Entity
from .serialize import find_nav
from .store import Ref
from .urlparts import method_not_allowed, resource_not_found
from .wire import ApiRequest, ApiResponse, json_response, no_content
from .writes import system_values

_PATH = re.compile(r"^/([A-Za-z0-9_]+)(?:\(([^)]*)\))?(/\$ref)?$")


def handle(ctx: Context, req: ApiRequest, meta: Entity, rid: str, rest: str, params: list[tuple[str, str]],
           where: tuple[str, str]) -> ApiResponse:
    m = _PATH.match(rest)
    if m is None:
        raise resource_not_found(rest.lstrip("/"))
    nav, related_key, is_ref = m.group(1), m.group(2), bool(m.group(3))
    method = req.method.upper()
    if many_to_many_nav(meta.name, nav) is not None:
        raise bad_request(f"The many-to-many navigation property '{nav}' is not supported by the emulator; "
                          "use AddMemberList / RemoveMemberList for marketing lists.")
    with ctx.store.lock:
        if ctx.store.get(meta.name, rid) is None:
            raise not_found(meta.name, rid)
    single = find_nav(meta, nav)
    if single is not None:
        if related_key is not None:
            raise resource_not_found(f"{nav}({related_key})")
        if not is_ref:
            if method != "GET":
                raise method_not_allowed(method)
            return _get_single(ctx, req, meta, rid, nav, params)
        return _single_ref(ctx, req, meta, rid, nav, method)
    rel = collection_nav(meta.name, nav)
    if rel is None:
        raise resource_not_found(nav)
    if not is_ref:
        if method != "GET" or related_key is not None:
            raise method_not_allowed(method)
        return _get_collection(ctx, req, meta, rid, rel, params, where)
    return _collection_ref(ctx, req, meta, rid, rel, related_key, params)


def _get_single(ctx: Context, req: ApiRequest, meta: Entity, rid: str, nav: str,
                params: list[tuple[str, str]]) -> ApiResponse:
    attr, target = find_nav(meta, nav)  # type: ignore[misc]
    target_meta = SCHEMA[target]
    prefs = parse_prefer(req.header("prefer"))
    opts = parse_options(target_meta, params, collection=False, store=ctx.store)
    with ctx.store.lock:
        value = ctx.store.get(meta.name, rid).get(attr.name)  # type: ignore[union-attr]
        related = ctx.store.get(target, value.id) if isinstance(value, Ref) and value.entity == target else None
        if related is None:
            return no_content()
        body = record_json(ctx, target_meta, related, opts, Annotations.from_prefs(prefs))
    payload = {"@odata.context": f"{ctx.api_url}$metadata#{target_meta.set_name}/$entity", **body}
    return json_response(200, payload, applied(prefs, "odata.include-annotations"))


def _get_collection(ctx: Context, req: ApiRequest, meta: Entity, rid: str, rel: OneToMany,
                    params: list[tuple[str, str]], where: tuple[str, str]) -> ApiResponse:
    target = SCHEMA[rel.referencing_entity]
    prefs = parse_prefer(req.header("prefer"))
    opts = parse_options(target, params, store=ctx.store)
    size, paged = page_size(ctx, prefs, opts)
    annotations = Annotations.from_prefs(prefs)
    store = ctx.store
    with store.lock:
        ids = set(store.referencing_ids(rel.referencing_entity, rel.referencing_attribute, Ref(meta.name, rid)))
        inner = opts.filter
        opts.filter = Filter(inner.predicate if inner else (lambda r: True),
                             ids if inner is None or inner.ids is None else ids & inner.ids)
        page = execute(store, target, opts, size, paged)
        rows = [record_json(ctx, target, r, opts, annotations) for r in page.rows]
    body: dict[str, Any] = {"@odata.context": f"{ctx.api_url}$metadata#{target.set_name}"}
    if opts.count:
        body["@odata.count"] = min(page.total, 5000)
    body["value"] = rows
    if page.next_skiptoken is not None:
        body["@odata.nextLink"] = next_link(ctx.api_url, *where, page.next_skiptoken)
    return json_response(200, body, applied(prefs, "odata.maxpagesize", "odata.include-annotations"))


def _odata_id(req: ApiRequest) -> str:
    body = req.json_body()
    if not isinstance(body, dict) or not isinstance(body.get("@odata.id"), str):
        raise bad_request("The body must be {\"@odata.id\": \"<entity set>(<id>)\"}.")
    return body["@odata.id"]


def _set_lookup(ctx: Context, entity: Entity, rid: str, attr_name: str, value: Ref | None) -> None:
    attr = entity.attrs[attr_name]
    if not attr.updatable:
        raise bad_request(f"The navigation property for '{attr_name}' cannot be changed (IsValidForUpdate is "
                          "false).")
    values: dict[str, Any] = {attr_name: value}
    system_values(ctx, entity, values, creating=False)
    ctx.store.update(entity.name, rid, values)


def _single_ref(ctx: Context, req: ApiRequest, meta: Entity, rid: str, nav: str, method: str) -> ApiResponse:
    attr, target = find_nav(meta, nav)  # type: ignore[misc]
    with ctx.store.lock:
        if method == "DELETE":
            current = ctx.store.get(meta.name, rid).get(attr.name)  # type: ignore[union-attr]
            if isinstance(current, Ref) and current.entity == target:
                _set_lookup(ctx, meta, rid, attr.name, None)
            return no_content()
        if method != "PUT":
            raise method_not_allowed(method)
        related_meta, related_id = resolve_odata_id(ctx.store, _odata_id(req))
        if related_meta.name != target:
            raise bad_request(f"'{nav}' references {target} records, not {related_meta.name}.")
        if ctx.store.get(target, related_id) is None:
            raise not_found(target, related_id)
        _set_lookup(ctx, meta, rid, attr.name, Ref(target, related_id))
    return no_content()


def _collection_ref(ctx: Context, req: ApiRequest, meta: Entity, rid: str, rel: OneToMany,
                    related_key: str | None, params: list[tuple[str, str]]) -> ApiResponse:
    method = req.method.upper()
    child = SCHEMA[rel.referencing_entity]
    with ctx.store.lock:
        if method == "POST":
            child_meta, child_id = resolve_odata_id(ctx.store, _odata_id(req))
            if child_meta.name != child.name or ctx.store.get(child.name, child_id) is None:
                raise not_found(child.name, child_id)
            _set_lookup(ctx, child, child_id, rel.referencing_attribute, Ref(meta.name, rid))
            return no_content()
        if method != "DELETE":
            raise method_not_allowed(method)
        ref_id = dict(params).get("$id")
        if related_key is not None:
            child_id = related_key.strip("{}").lower()
        elif ref_id:
            _, child_id = resolve_odata_id(ctx.store, ref_id)
        else:
            raise bad_request(f"DELETE of {rel.referenced_nav}/$ref needs the related record: "
                              f"{rel.referenced_nav}(id)/$ref or $id=...")
        row = ctx.store.get(child.name, child_id)
        if row is None:
            raise not_found(child.name, child_id)
        if row.get(rel.referencing_attribute) == Ref(meta.name, rid):
            _set_lookup(ctx, child, child_id, rel.referencing_attribute, None)
    return no_content()
