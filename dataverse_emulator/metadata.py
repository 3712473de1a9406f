"""`EntityDefinitions` and `RelationshipDefinitions` (query-metadata-web-api.md, retrieve-metadata-name-metadataid.md).

Paths: `EntityDefinitions[(LogicalName='x') | (MetadataId)]`, then `/Attributes[(LogicalName='x') | (id)]`
with an optional type cast (`/Microsoft.Dynamics.CRM.PicklistAttributeMetadata`, ...; a cast of the collection
keeps only that type) and `/OptionSet` or `/GlobalOptionSet`; `/OneToManyRelationships`,
`/ManyToOneRelationships`, `/ManyToManyRelationships` (each addressable by `(SchemaName='x')` or id); `/Keys`
(GET, POST to create one, DELETE one: the alternate keys of keys.py). `RelationshipDefinitions` with an
optional cast. Options: `$select`, `$filter` (dictquery.py), `$expand` of `Attributes`, the three relationship
collections and `Keys` on entities (with `$select`/`$filter` inside), and of `OptionSet`/`GlobalOptionSet` on
attributes (with `$select`); nothing else, and no other write. Definitions come from metadata_records.py.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

from . import keys
from .context import Context
from .csdl import csdl, service_document
from .dictquery import compile_dict_filter, expand_items, parse_select, select
from .errors import ServiceError, bad_request
from .metadata_records import (
    METADATA_TYPES,
    NS,
    attribute_records,
    entity_record,
    many_to_many_record,
    metadata_id,
    one_to_many_record,
    option_set,
)
from .relationships import MANY_TO_MANY, many_to_many, many_to_one, one_to_many, one_to_many_all
from .schema import SCHEMA, Entity
from .urlparts import method_not_allowed
from .wire import ApiRequest, ApiResponse, json_response, no_content

__all__ = ["csdl", "handle", "handle_relationships", "service_document"]
_ENTITY_NAV = ("Attributes", "OneToManyRelationships", "ManyToOneRelationships", "ManyToManyRelationships", "Keys")
_NAV_TYPES = {"Attributes": "AttributeMetadata", "OneToManyRelationships": "OneToManyRelationshipMetadata",
              "ManyToOneRelationships": "OneToManyRelationshipMetadata",
              "ManyToManyRelationships": "ManyToManyRelationshipMetadata", "Keys": "EntityKeyMetadata"}
_ATTR_NAV = ("OptionSet", "GlobalOptionSet")
_SEGMENT = re.compile(r"/?(Microsoft\.Dynamics\.CRM\.[A-Za-z]+|[A-Za-z]*)(?:\(([^)]*)\))?")
_CASTS = {f"{NS}.{t}" for t in set(METADATA_TYPES.values())}
_REL_CASTS = {f"{NS}.OneToManyRelationshipMetadata", f"{NS}.ManyToManyRelationshipMetadata"}


def entity_not_found(name: str) -> ServiceError:
    return ServiceError(404, "0x80040217", f"Could not find an entity with specified LogicalName '{name}'.")


def _segments(rest: str) -> list[tuple[str, str | None]]:
    out, i = [], 0
    while i < len(rest):
        m = _SEGMENT.match(rest, i)
        if m is None or m.end() == i or (out and not m.group(1)):
            raise bad_request(f"Resource not found for the segment '{rest[i:].lstrip('/')}'.")
        out.append((m.group(1), m.group(2)))
        i = m.end()
    return out


def _options(params: list[tuple[str, str]], allowed: tuple[str, ...]) -> dict[str, str]:
    seen: dict[str, str] = {}
    for key, value in params:
        if key not in allowed:
            raise bad_request(f"The query parameter '{key}' is not supported on metadata (Dataverse metadata queries "
                              f"take {', '.join(allowed)}).")
        seen[key] = value
    return seen


def _entity_by_key(key: str) -> Entity:
    m = re.fullmatch(r"LogicalName='([^']*)'", key.strip())
    if m is not None:
        meta = SCHEMA.get(m.group(1))
        if meta is None:
            raise entity_not_found(m.group(1))
        return meta
    try:
        wanted = str(uuid.UUID(key.strip("{}")))
    except ValueError:
        raise bad_request(f"Address entity definitions as EntityDefinitions(LogicalName='name') or by MetadataId, "
                          f"not '{key}'.") from None
    meta = next((m for m in SCHEMA.values() if metadata_id(m.name) == wanted), None)
    if meta is None:
        raise ServiceError(404, "0x80040217", f"Could not find an entity with MetadataId '{wanted}'.")
    return meta


def _find(records: list[dict[str, Any]], key: str, name_field: str, what: str) -> dict[str, Any]:
    m = re.fullmatch(rf"{name_field}='([^']*)'", key.strip())
    if m is not None:
        found = next((r for r in records if r.get(name_field) == m.group(1)), None)
        shown = m.group(1)
    else:
        found = next((r for r in records if r.get("MetadataId") == key.strip("{}").lower()), None)
        shown = key
    if found is None:
        raise ServiceError(404, "0x80040217", f"Could not find {what} with specified {name_field} '{shown}'.")
    return found


def _query(records: list[dict[str, Any]], opts: dict[str, str], type_name: str,
           expand: Callable[[dict[str, Any], str], None] | None = None,
           navigation: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    if "$filter" in opts and records:
        pred = compile_dict_filter(opts["$filter"], records[0], type_name)
        records = [r for r in records if pred(r)]
    names = parse_select(opts.get("$select"))
    out = [select(r, names, type_name, navigation) for r in records]
    if "$expand" in opts:
        if expand is None:
            raise bad_request(f"$expand is not supported on {type_name} by the emulator.")
        for original, row in zip(records, out, strict=True):
            expand(original, row)
    return out


def handle(ctx: Context, req: ApiRequest, rest: str, params: list[tuple[str, str]]) -> ApiResponse:
    method = req.method.upper()
    base = f"{ctx.api_url}$metadata#EntityDefinitions"
    parts = _segments(rest) if rest not in ("", "()") else []
    if not parts:
        if method != "GET":
            raise method_not_allowed(method)
        opts = _options(params, ("$select", "$filter", "$expand"))
        records = [entity_record(m) for m in SCHEMA.values()]
        by_name = {r["LogicalName"]: SCHEMA[r["LogicalName"]] for r in records}
        rows = _query(records, opts, "EntityMetadata", _entity_expander(ctx, opts, by_name), _ENTITY_NAV)
        return json_response(200, {"@odata.context": base, "value": rows})
    first, key = parts[0]
    if first or key is None:
        raise bad_request(f"Resource not found for the segment 'EntityDefinitions{rest}'.")
    meta = _entity_by_key(key)
    if len(parts) == 1:
        if method != "GET":
            raise method_not_allowed(method)
        opts = _options(params, ("$select", "$expand"))
        row = _query([entity_record(meta)], opts, "EntityMetadata", _entity_expander(ctx, opts, {meta.name: meta}),
                     _ENTITY_NAV)[0]
        return json_response(200, {"@odata.context": f"{base}/$entity", **row})
    nav, nav_key = parts[1]
    if nav == "Keys":
        return _keys(ctx, req, meta, nav_key, parts[2:], params)
    if method != "GET":
        raise bad_request("Changing table definitions is not supported by the emulator (only alternate keys).")
    if nav == "Attributes":
        return _attributes(ctx, meta, nav_key, parts[2:], params)
    if nav in ("OneToManyRelationships", "ManyToOneRelationships", "ManyToManyRelationships") and len(parts) == 2:
        records = _relationship_records(meta, nav)
        return _collection_or_one(ctx, records, nav_key, params, f"{base}('{meta.name}')/{nav}",
                                  "SchemaName", "a relationship", _NAV_TYPES[nav])
    raise bad_request(f"Resource not found for the segment '{rest.lstrip('/')}'.")


def _relationship_records(meta: Entity, nav: str) -> list[dict[str, Any]]:
    if nav == "OneToManyRelationships":
        return [one_to_many_record(r) for r in one_to_many(meta.name)]
    if nav == "ManyToOneRelationships":
        return [one_to_many_record(r) for r in many_to_one(meta.name)]
    return [many_to_many_record(r) for r in many_to_many(meta.name)]


def _collection_or_one(ctx: Context, records: list[dict[str, Any]], key: str | None, params: list[tuple[str, str]],
                       context: str, name_field: str, what: str, type_name: str) -> ApiResponse:
    if key is None:
        opts = _options(params, ("$select", "$filter"))
        return json_response(200, {"@odata.context": context, "value": _query(records, opts, type_name)})
    opts = _options(params, ("$select",))
    row = _query([_find(records, key, name_field, what)], opts, type_name)[0]
    return json_response(200, {"@odata.context": f"{context}/$entity", **row})


def _entity_expander(ctx: Context, opts: dict[str, str], by_name: dict[str, Entity]) -> Callable[
        [dict[str, Any], str], None] | None:
    if "$expand" not in opts:
        return None
    items = expand_items(opts["$expand"])
    for name, inner in items:
        if name not in _ENTITY_NAV:
            raise bad_request(f"Could not find a navigation property named '{name}' on type '{NS}.EntityMetadata'.")
        extra = set(inner) - {"$select", "$filter"}
        if extra:
            raise bad_request(f"The option(s) {sorted(extra)} are not supported inside $expand={name} (emulator).")

    def expand(original: dict[str, Any], row: dict[str, Any]) -> None:
        meta = by_name[original["LogicalName"]]
        for name, inner in items:
            if name == "Attributes":
                records = attribute_records(meta)
            elif name == "Keys":
                records = keys.definitions(ctx.store, meta.name)
            else:
                records = _relationship_records(meta, name)
            row[name] = _query(records, inner, _NAV_TYPES[name]) if records else []
    return expand


def _attributes(ctx: Context, meta: Entity, key: str | None, tail: list[tuple[str, str | None]],
                params: list[tuple[str, str]]) -> ApiResponse:
    records = attribute_records(meta)
    cast = None
    if tail and tail[0][0] in _CASTS:
        cast = tail[0][0]
        tail = tail[1:]
    elif tail and tail[0][0].startswith(NS):
        raise bad_request(f"The type cast '{tail[0][0]}' is not supported by the emulator.")
    if cast is not None:
        records = [r for r in records if r["@odata.type"] == f"#{cast}"]
    type_name = cast[len(NS) + 1:] if cast else "AttributeMetadata"
    context = f"{ctx.api_url}$metadata#EntityDefinitions('{meta.name}')/Attributes" + (f"/{cast}" if cast else "")
    if key is None:
        if tail:
            raise bad_request(f"Resource not found for the segment '{tail[0][0]}'.")
        opts = _options(params, ("$select", "$filter", "$expand"))
        rows = _query(records, opts, type_name, _attr_expander(meta, opts, cast), _ATTR_NAV)
        return json_response(200, {"@odata.context": context, "value": rows})
    record = _find(attribute_records(meta), key, "LogicalName", "an attribute")
    if cast is not None and record["@odata.type"] != f"#{cast}":
        raise bad_request(f"The attribute '{record['LogicalName']}' is a {record['@odata.type'][1:]}, not a {cast}.")
    if tail:
        nav = tail[0][0]
        if nav not in _ATTR_NAV or len(tail) > 1 or cast is None:
            raise bad_request(f"Resource not found for the segment '{nav}' (cast the attribute to its type first).")
        value = _option_set(meta, record, nav, cast)
        opts = _options(params, ("$select",))
        body = select(value, parse_select(opts.get("$select")), "OptionSetMetadata") if value else None
        if body is None:
            return no_content()
        return json_response(200, {"@odata.context": f"{context}/{nav}/$entity", **body})
    opts = _options(params, ("$select", "$expand"))
    row = _query([record], opts, type_name, _attr_expander(meta, opts, cast), _ATTR_NAV)[0]
    return json_response(200, {"@odata.context": f"{context}/$entity", **row})


def _option_set(meta: Entity, record: dict[str, Any], nav: str, cast: str | None) -> dict[str, Any] | None:
    if cast is None or "Picklist" not in cast and "State" not in cast and "Status" not in cast \
            and "Boolean" not in cast:
        raise bad_request(f"'{nav}' is a navigation property of enum attributes: cast to "
                          f"{NS}.PicklistAttributeMetadata (or State/Status/Boolean) to read it.")
    if nav == "GlobalOptionSet":
        return None  # the emulator's option sets are all local
    return option_set(meta, meta.attrs[record["LogicalName"]])


def _attr_expander(meta: Entity, opts: dict[str, str], cast: str | None) -> Callable[
        [dict[str, Any], str], None] | None:
    if "$expand" not in opts:
        return None
    items = expand_items(opts["$expand"])
    for name, inner in items:
        if name not in _ATTR_NAV:
            raise bad_request(f"Could not find a navigation property named '{name}' on the attribute type.")
        if set(inner) - {"$select"}:
            raise bad_request(f"Only $select is supported inside $expand={name}.")

    def expand(original: dict[str, Any], row: dict[str, Any]) -> None:
        for name, inner in items:
            value = _option_set(meta, original, name, cast)
            row[name] = select(value, parse_select(inner.get("$select")), "OptionSetMetadata") if value else None
    return expand


def _keys(ctx: Context, req: ApiRequest, meta: Entity, key: str | None, tail: list[tuple[str, str | None]],
          params: list[tuple[str, str]]) -> ApiResponse:
    method = req.method.upper()
    if tail:
        raise bad_request(f"Resource not found for the segment '{tail[0][0]}'.")
    context = f"{ctx.api_url}$metadata#EntityDefinitions('{meta.name}')/Keys"
    if method == "POST" and key is None:
        _options(params, ())
        created = keys.create_key(ctx.store, meta, req.json_body())
        entity_id = f"{ctx.api_url}EntityDefinitions({metadata_id(meta.name)})/Keys({created['MetadataId']})"
        return no_content({"OData-EntityId": entity_id})
    if method == "DELETE" and key is not None:
        found = _find(keys.definitions(ctx.store, meta.name), key, "LogicalName", "an entity key")
        keys.delete_key(ctx.store, meta.name, found["MetadataId"])
        return no_content()
    if method != "GET":
        raise method_not_allowed(method)
    return _collection_or_one(ctx, keys.definitions(ctx.store, meta.name), key, params, context, "LogicalName",
                              "an entity key", "EntityKeyMetadata")


def handle_relationships(ctx: Context, req: ApiRequest, rest: str, params: list[tuple[str, str]]) -> ApiResponse:
    """`RelationshipDefinitions[/cast][(SchemaName='x') | (id)]`."""
    if req.method.upper() != "GET":
        raise bad_request("Changing relationship definitions is not supported by the emulator.")
    one = [one_to_many_record(r) for r in one_to_many_all()]
    many = [many_to_many_record(r) for r in MANY_TO_MANY]
    parts = _segments(rest) if rest else []
    key = parts[0][1] if parts and not parts[0][0] else None
    casts = [p for p, _ in parts if p]
    if casts and (len(casts) > 1 or casts[0] not in _REL_CASTS):
        raise bad_request(f"Resource not found for the segment '{casts[0]}'.")
    records = one + many
    type_name = "RelationshipMetadataBase"
    if casts:
        records = one if casts[0].endswith("OneToManyRelationshipMetadata") else many
        type_name = casts[0][len(NS) + 1:]
    return _collection_or_one(ctx, records, key, params, f"{ctx.api_url}$metadata#RelationshipDefinitions",
                              "SchemaName", "a relationship", type_name)
