"""`GET {set}?fetchXml=...`, `?savedQuery={id}` and `?userQuery={id}`: FetchXML run against the store
(fetchxml/*.md, webapi/query: use FetchXml).

Served: `<attribute>` / `<all-attributes>` (no attribute element: every column), `<filter>`/`<condition>`
(every operator fetchxml.py knows), `<order>` on the root table, `<link-entity>` inner and outer (nested too;
a 1:N link gives one result row per related row; linked columns come back as `alias.column`, a missing alias
is `{name}{n}`), `distinct`, `top`, and paging by `count`/`page` with `paging-cookie`: when more rows exist the
answer carries `@Microsoft.Dynamics.CRM.morerecords` and `@Microsoft.Dynamics.CRM.fetchxmlpagingcookie`
(a `<cookie pagenumber=... pagingcookie=...>` whose inner cookie is URL-encoded twice) when the request asks
for those annotations; the last page has neither. As in Microsoft's samples, null columns are left out of
each row. A view's FetchXML runs as it is saved (`savedQuery`/`userQuery`).

Anything else in the FetchXML (aggregates, other link types, attribute aliases, unknown elements or
attributes, ordering on a link-entity) is a 400 naming it, and no other query option or `odata.maxpagesize`
may come with these parameters.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import quote, unquote

from .context import Context
from .errors import bad_request, not_found
from .fetchxml import entity_meta, fetch_to_query, query_error
from .odata_values import value_key
from .prefer import Annotations, applied, parse_prefer
from .queryexpr import compile_criteria, link_key
from .schema import Entity
from .serialize import record_to_json
from .store import Store
from .wire import ApiRequest, ApiResponse, json_response

MORE = "Microsoft.Dynamics.CRM.morerecords"
COOKIE = "Microsoft.Dynamics.CRM.fetchxmlpagingcookie"
TOTAL = "Microsoft.Dynamics.CRM.totalrecordcount"
_ALLOWED: dict[str, set[str]] = {
    "fetch": {"version", "output-format", "mapping", "distinct", "no-lock", "top", "count", "page", "paging-cookie",
              "returntotalrecordcount"},
    "entity": {"name"}, "attribute": {"name"}, "all-attributes": set(), "order": {"attribute", "descending"},
    "filter": {"type"}, "condition": {"attribute", "operator", "value", "uiname", "uitype", "uihidden"},
    "value": {"uiname", "uitype"}, "link-entity": {"name", "from", "to", "alias", "link-type", "visible", "intersect"},
}
Combo = tuple[dict[str, Any], dict[str, dict[str, Any] | None]]


def answer(ctx: Context, req: ApiRequest, meta: Entity, params: list[tuple[str, str]]) -> ApiResponse:
    given = [(k, v) for k, v in params]
    if len(given) != 1:
        raise bad_request(f"{given[0][0] if given else 'fetchXml'} cannot be combined with other query options "
                          f"({', '.join(k for k, _ in given)}) by the emulator.")
    prefs = parse_prefer(req.header("prefer"))
    if "odata.maxpagesize" in prefs:
        raise bad_request("Prefer: odata.maxpagesize does not page FetchXML in the emulator; set the fetch "
                          "element's count and page attributes.")
    name, value = given[0]
    fetchxml = value if name == "fetchXml" else _view_fetch(ctx.store, meta, name, value)
    root = _parse(fetchxml)
    entity_el = root.find("entity")
    if entity_el is None or entity_meta(entity_el.get("name", "")).name != meta.name:
        raise bad_request(f"The FetchXML entity must be '{meta.name}' to be run on {meta.set_name}.")
    annotations = Annotations.from_prefs(prefs)
    body = _run(ctx, meta, fetchxml, root, entity_el, annotations)
    return json_response(200, body, applied(prefs, "odata.include-annotations"))


def _view_fetch(store: Store, meta: Entity, name: str, value: str) -> str:
    table = "savedquery" if name == "savedQuery" else "userquery"
    with store.lock:
        row = store.get(table, value.strip("{}"))
    if row is None:
        raise not_found(table, value)
    if (row.get("returnedtypecode") or "") != meta.name:
        raise bad_request(f"The {table} {value} returns {row.get('returnedtypecode')} records, not {meta.name}.")
    return str(row.get("fetchxml") or "")


def _parse(fetchxml: str) -> ET.Element:
    try:
        root = ET.fromstring(fetchxml)
    except ET.ParseError as exc:
        raise query_error(f"Invalid XML: {exc}", "0x80040203") from exc
    for el in root.iter():
        allowed = _ALLOWED.get(el.tag)
        if allowed is None:
            raise bad_request(f"The FetchXML element <{el.tag}> is not supported by the emulator.")
        extra = set(el.attrib) - allowed
        if extra:
            raise bad_request(f"The FetchXML attribute(s) {sorted(extra)} of <{el.tag}> are not supported by the "
                              "emulator.")
        if el.tag == "link-entity" and (el.get("link-type") or "inner") not in ("inner", "outer"):
            raise bad_request(f"link-type '{el.get('link-type')}' is not supported by the emulator (inner, outer).")
    if root.find(".//link-entity/order") is not None:
        raise bad_request("Ordering on a link-entity column is not supported by the emulator.")
    if root.get("top") and (root.get("count") or root.get("page")):
        raise bad_request("The fetch top attribute can't be used together with count or page.")
    return root


def _run(ctx: Context, meta: Entity, fetchxml: str, root: ET.Element, entity_el: ET.Element,
         annotations: Annotations) -> dict[str, Any]:
    query = fetch_to_query(fetchxml)
    store = ctx.store
    with store.lock:
        pred = compile_criteria(store, meta, query.get("Criteria"), ctx.caller_id)
        rows = [r for r in store.rows(meta.name) if pred(r)]
        rows = _order(rows, meta, query.get("Orders") or [])
        combos: list[Combo] = [(r, {}) for r in rows]
        names = _aliases(entity_el)
        for link_el, link in zip(entity_el.findall("link-entity"), query.get("LinkEntities") or [], strict=True):
            combos = _join(store, ctx.caller_id, combos, None, link_el, link, names)
        out = [_row(store, meta, c, entity_el, names, annotations, ctx.api_url) for c in combos]
        if (root.get("distinct") or "").lower() == "true":
            out = _distinct(out)
        return _page(out, meta, root, annotations, ctx.api_url)


def _order(rows: list[dict[str, Any]], meta: Entity, orders: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = sorted(rows, key=lambda r: r[meta.primary_id])
    for order in reversed(orders):
        attr = meta.attrs[order["AttributeName"]]
        rows.sort(key=lambda r, a=attr: (0, 0) if (k := value_key(a, r.get(a.name))) is None else (1, k),
                  reverse=order["OrderType"] == "Descending")
    return rows


def _aliases(entity_el: ET.Element) -> dict[int, str]:
    """Each link-entity's alias: its own, or `{name}{n}` numbered in document order."""
    out: dict[int, str] = {}
    for n, el in enumerate(entity_el.iter("link-entity"), start=1):
        out[id(el)] = el.get("alias") or f"{el.get('name')}{n}"
    return out


def _join(store: Store, caller: str, combos: list[Combo], parent_alias: str | None, el: ET.Element,
          link: dict[str, Any], names: dict[int, str]) -> list[Combo]:
    linked = entity_meta(link["LinkToEntityName"])
    alias = names[id(el)]
    pred = compile_criteria(store, linked, link.get("LinkCriteria"), caller)
    parent_attr, linked_attr = link["LinkFromAttributeName"], link["LinkToAttributeName"]
    index: dict[Any, list[dict[str, Any]]] = {}
    for row in store.rows(linked.name):
        if pred(row):
            index.setdefault(link_key(row.get(linked_attr)), []).append(row)
    outer = link.get("JoinOperator") == "LeftOuter"
    result: list[Combo] = []
    for root_row, aliases in combos:
        parent = root_row if parent_alias is None else aliases.get(parent_alias)
        matches = index.get(link_key(parent.get(parent_attr)), []) if parent is not None else []
        nested = [(root_row, {**aliases, alias: m}) for m in sorted(matches, key=lambda m: m[linked.primary_id])]
        for child_el, child in zip(el.findall("link-entity"), link.get("LinkEntities") or [], strict=True):
            nested = _join(store, caller, nested, alias, child_el, child, names)
        if nested:
            result += nested
        elif outer:
            result.append((root_row, {**aliases, alias: None}))
    return result


def _row(store: Store, meta: Entity, combo: Combo, entity_el: ET.Element, names: dict[int, str],
         annotations: Annotations, api_url: str) -> dict[str, Any]:
    record, aliases = combo
    columns = [a.get("name", "") for a in entity_el.findall("attribute")]
    select = None if entity_el.find("all-attributes") is not None or not columns else columns
    out = {k: v for k, v in record_to_json(store, meta.name, record, select, annotations, api_url).items()
           if v is not None}
    for link_el in entity_el.iter("link-entity"):
        linked_row = aliases.get(names[id(link_el)])
        alias = names[id(link_el)]
        for attr_el in link_el.findall("attribute"):
            value = linked_row.get(attr_el.get("name", "")) if linked_row is not None else None
            if value is not None:
                out[f"{alias}.{attr_el.get('name')}"] = value.id if isinstance(value, tuple) else value
    return out


def _distinct(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen, out = set(), []
    for row in rows:
        key = tuple(sorted((k, repr(v)) for k, v in row.items() if k != "@odata.etag"))
        if key not in seen:
            seen.add(key)
            out.append(row)
    return out


def _page(rows: list[dict[str, Any]], meta: Entity, root: ET.Element, annotations: Annotations,
          api_url: str) -> dict[str, Any]:
    body: dict[str, Any] = {"@odata.context": f"{api_url}$metadata#{meta.set_name}"}
    total = len(rows)
    if root.get("top"):
        body["value"] = rows[: int(root.get("top") or 0)]
        return body
    count = min(int(root.get("count") or 5000), 5000)
    page = max(1, int(root.get("page") or 1))
    start = (page - 1) * count
    cookie = root.get("paging-cookie")
    if cookie and page > 1:
        start = _cookie_start(rows, meta, cookie, start)
    chunk = rows[start: start + count]
    if (root.get("returntotalrecordcount") or "").lower() == "true" and annotations.wants(TOTAL):
        body["@" + TOTAL] = min(total, 5000)
    if start + count < total and chunk:
        if annotations.wants(COOKIE):
            body["@" + COOKIE] = _cookie(meta, chunk, page)
        if annotations.wants(MORE):
            body["@" + MORE] = True
    body["value"] = chunk
    return body


def _cookie(meta: Entity, chunk: list[dict[str, Any]], page: int) -> str:
    pk = meta.primary_id
    inner = (f'<cookie page="{page}"><{pk} last="{{{chunk[-1][pk].upper()}}}" '
             f'first="{{{chunk[0][pk].upper()}}}" /></cookie>')
    return f'<cookie pagenumber="{page + 1}" pagingcookie="{quote(quote(inner, safe=""), safe="")}" ' \
           'istracking="False" />'


def _cookie_start(rows: list[dict[str, Any]], meta: Entity, cookie: str, fallback: int) -> int:
    """Start after the cookie's last row when it is still there; else page arithmetic (simple paging)."""
    text = cookie if cookie.lstrip().startswith("<") else unquote(unquote(cookie))
    try:
        el = ET.fromstring(text).find(meta.primary_id)
    except ET.ParseError:
        raise bad_request("The paging-cookie of the fetch element is not valid XML.") from None
    last = (el.get("last") or "").strip("{}").lower() if el is not None else ""
    for i, row in enumerate(rows):
        if row.get(meta.primary_id) == last:
            return i + 1
    return fallback
