"""`$expand`: related records inside the answer (webapi/query/join-tables.md).

- Single-valued navigation properties (`primarycontactid`, `parentcustomerid_account`): `$select` and a nested
  `$expand` inside; a null or other-typed lookup expands to null; `nav/$ref` gives `{"@odata.id": ...}`.
- Collection-valued ones (1:N, e.g. `Contact_Tasks`): `$select`, `$filter`, `$orderby`, `$top` inside; up to
  5,000 rows each, no paging, and `<nav>@odata.nextLink` pointing at `{set}({id})/{nav}` with those options,
  as the service answers a single-level expand. Each row carries its lookup back to the parent.
Refused with a 400 naming it: `$ref` on a collection (the service's message), `$filter`/`$top`/`$orderby` on a
single-valued property, nested `$expand` together with a collection-valued one (the service then pages each
expanded collection: not modelled), many-to-many navigation properties, more than 15 `$expand` options.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import bad_request
from .odata import Filter, compile_filter
from .odata_values import value_key
from .prefer import Annotations
from .qoptions import parse_orderby, parse_select, parse_top, split_top
from .relationships import OneToMany, collection_nav, many_to_many_nav
from .schema import SCHEMA, Attr, Entity
from .serialize import find_nav, record_to_json
from .store import Ref, Store

MAX_EXPANDS = 15
MAX_ROWS = 5000


@dataclass
class ExpandItem:
    nav: str
    target: Entity
    attr: Attr | None = None             # single-valued: the lookup
    rel: OneToMany | None = None         # collection-valued: the relationship
    ref: bool = False
    select: list[str] | None = None
    filter: Filter | None = None
    orderby: list[tuple[Attr, bool]] = field(default_factory=list)
    top: int | None = None
    expand: list[ExpandItem] = field(default_factory=list)
    raw_options: list[str] = field(default_factory=list)


def parse_expand(store: Store, meta: Entity, text: str, aliases: dict[str, str], depth: int = 0) -> list[ExpandItem]:
    items = [_item(store, meta, part, aliases, depth) for part in split_top(text) if part]
    if not items:
        raise bad_request(f"Syntax error in $expand: '{text}'.")
    if depth == 0:
        total = _count(items)
        if total > MAX_EXPANDS:
            raise bad_request(f"The query has {total} $expand options; Dataverse allows up to {MAX_EXPANDS}.")
        if any(i.rel for i in _walk(items)) and any(i.expand for i in _walk(items)):
            raise bad_request("Nested $expand together with a collection-valued $expand is not supported by the "
                              "emulator (Dataverse then pages each expanded collection).")
    return items


def _walk(items: list[ExpandItem]) -> list[ExpandItem]:
    return [x for i in items for x in [i, *_walk(i.expand)]]


def _count(items: list[ExpandItem]) -> int:
    return len(_walk(items))


def _item(store: Store, meta: Entity, part: str, aliases: dict[str, str], depth: int) -> ExpandItem:
    name, _, rest = part.partition("(")
    name = name.strip()
    ref = name.endswith("/$ref")
    nav = name[:-5] if ref else name
    if rest and not rest.endswith(")"):
        raise bad_request(f"Syntax error in $expand: '{part}'.")
    single = find_nav(meta, nav)
    if single is not None:
        item = ExpandItem(nav, SCHEMA[single[1]], attr=single[0], ref=ref)
    elif (rel := collection_nav(meta.name, nav)) is not None:
        if ref:
            raise bad_request("Expand with $ref is only supported on lookup type navigation property.")
        item = ExpandItem(nav, SCHEMA[rel.referencing_entity], rel=rel)
    elif many_to_many_nav(meta.name, nav) is not None:
        raise bad_request(f"$expand of the many-to-many navigation property '{nav}' is not supported by the "
                          "emulator.")
    else:
        raise bad_request(f"Could not find a property named '{nav}' on type 'Microsoft.Dynamics.CRM.{meta.name}'.")
    if rest:
        _options(store, item, rest[:-1], aliases, depth)
    return item


def _options(store: Store, item: ExpandItem, text: str, aliases: dict[str, str], depth: int) -> None:
    if item.ref:
        raise bad_request(f"Query options are not allowed with {item.nav}/$ref.")
    seen: set[str] = set()
    for opt in split_top(text, ";"):
        if not opt:
            continue
        key, eq, value = opt.partition("=")
        key = key.strip()
        if not eq or key in seen:
            raise bad_request(f"Syntax error in the $expand options of '{item.nav}': '{opt}'.")
        seen.add(key)
        if key not in ("$select", "$filter", "$orderby", "$top", "$expand"):
            raise bad_request(f"The query option '{key}' is not supported inside $expand (Dataverse allows "
                              "$select, $filter, $orderby, $top and $expand).")
        if item.attr is not None and key not in ("$select", "$expand"):
            raise bad_request(f"Only $select and $expand are supported by the emulator when expanding the "
                              f"single-valued navigation property '{item.nav}' ({key} was given).")
        if key == "$select":
            item.select = parse_select(item.target, value)
        elif key == "$filter":
            item.filter = compile_filter(item.target, value, aliases, store)
        elif key == "$orderby":
            item.orderby = parse_orderby(item.target, value)
        elif key == "$top":
            item.top = parse_top(value)
        else:
            item.expand = parse_expand(store, item.target, value, aliases, depth + 1)
        item.raw_options.append(f"{key}={value}")


def context_suffix(select: list[str] | None, items: list[ExpandItem]) -> str:
    """`(name,primarycontactid(fullname),Account_Tasks(subject))` for `@odata.context`."""
    parts = list(select or [])
    for item in items:
        if item.ref:
            parts += [item.nav, f"{item.nav}/$ref()"]
        else:
            parts.append(item.nav + (context_suffix(item.select, item.expand) or "()"))
    return f"({','.join(parts)})" if parts else ""


def expand_record(store: Store, meta: Entity, record: dict[str, Any], out: dict[str, Any],
                  items: list[ExpandItem], annotations: bool | Annotations, api_url: str) -> None:
    """Add the expanded properties of `record` to its JSON `out`. Callers hold store.lock."""
    for item in items:
        if item.attr is not None:
            value = record.get(item.attr.name)
            related = store.get(item.target.name, value.id) if (
                isinstance(value, Ref) and value.entity == item.target.name) else None
            if item.ref:
                out[f"_{item.attr.name}_value"] = value.id if isinstance(value, Ref) else None
                out[item.nav] = None if related is None else {
                    "@odata.id": f"{api_url}{item.target.set_name}({value.id})"}  # type: ignore[union-attr]
                continue
            if related is None:
                out[item.nav] = None
                continue
            nested = record_to_json(store, item.target.name, related, item.select, annotations, api_url, etag=False)
            expand_record(store, item.target, related, nested, item.expand, annotations, api_url)
            out[item.nav] = nested
        else:
            _expand_collection(store, meta, record, out, item, annotations, api_url)


def related_rows(store: Store, meta: Entity, record: dict[str, Any], rel: OneToMany) -> list[dict[str, Any]]:
    table = store.tables[rel.referencing_entity]
    ids = store.referencing_ids(rel.referencing_entity, rel.referencing_attribute,
                                Ref(meta.name, record[meta.primary_id]))
    return [table[i] for i in ids]


def order_rows(rows: list[dict[str, Any]], orderby: list[tuple[Attr, bool]], pid: str) -> list[dict[str, Any]]:
    rows = sorted(rows, key=lambda r: r[pid])
    for attr, desc in reversed(orderby):
        rows.sort(key=lambda r, a=attr: (0, 0) if (k := value_key(a, r.get(a.name))) is None else (1, k),
                  reverse=desc)
    return rows


def _expand_collection(store: Store, meta: Entity, record: dict[str, Any], out: dict[str, Any], item: ExpandItem,
                       annotations: bool | Annotations, api_url: str) -> None:
    rel = item.rel
    assert rel is not None
    rows = related_rows(store, meta, record, rel)
    if item.filter is not None:
        rows = [r for r in rows if item.filter.predicate(r) is True]
    rows = order_rows(rows, item.orderby, item.target.primary_id)[: min(item.top or MAX_ROWS, MAX_ROWS)]
    select = item.select
    if select is not None and rel.referencing_attribute not in select:
        select = [*select, rel.referencing_attribute]  # the lookup back to the parent is always there
    out[item.nav] = [record_to_json(store, item.target.name, r, select, annotations, api_url) for r in rows]
    query = "&".join(item.raw_options)
    link = f"{api_url}{meta.set_name}({record[meta.primary_id]})/{item.nav}"
    out[f"{item.nav}@odata.nextLink"] = f"{link}?{query}" if query else link
