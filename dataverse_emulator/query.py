"""Entity-set queries: the query options (`$select`, `$filter`, `$orderby`, `$top`, `$count`, `$skiptoken`,
`$expand`), ordering, and Dataverse-style paging with a paging-cookie `$skiptoken`.

Rows are ordered by `$orderby` and then by primary id (GUIDs in SQL Server's order, guids.py), and the
skiptoken carries the last row's sort values, so a next page starts strictly after the previous one whatever
was written in between. Callers hold store.lock.
"""

from __future__ import annotations

import heapq
import json
import re
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from .errors import ServiceError, bad_request
from .expand import ExpandItem, parse_expand
from .guids import sql_guid_key
from .odata import Filter, compile_filter, order_key
from .prefer import parse_prefer
from .qoptions import parse_bool, parse_orderby, parse_select, parse_top
from .schema import Attr, Entity
from .store import Store

COUNT_CAP = 5000
__all__ = ["QueryOptions", "execute", "next_link", "parse_options", "parse_prefer", "parse_select"]
_COOKIE = re.compile(r'^<cookie pagenumber="(\d+)" pagingcookie="([^"]*)" istracking="(?:True|False)" />$')


@dataclass
class Cookie:
    page: int                 # the page the token leads to
    last: list[Any]           # sort values of the previous page's last row (order columns, then the id)


@dataclass
class QueryOptions:
    select: list[str] | None = None
    filter: Filter | None = None
    orderby: list[tuple[Attr, bool]] = field(default_factory=list)  # (column, descending)
    top: int | None = None
    count: bool = False
    cookie: Cookie | None = None
    expand: list[ExpandItem] = field(default_factory=list)


@dataclass
class Page:
    rows: list[dict[str, Any]]
    total: int
    next_skiptoken: str | None


ENTITY_SET_OPTIONS = ("$select", "$filter", "$orderby", "$top", "$count", "$skiptoken", "$expand")
SINGLE_OPTIONS = ("$select", "$expand")


def parse_options(meta: Entity, params: list[tuple[str, str]], *, collection: bool = True,
                  store: Store | None = None) -> QueryOptions:
    """Validate and parse the query string of an entity-set (or single record) request. Aliases (`@p`) feed
    `$filter`. Every option and parameter the emulator does not serve is a 400 naming it."""
    seen: dict[str, str] = {}
    aliases = {k: v for k, v in params if k.startswith("@")}
    allowed = ENTITY_SET_OPTIONS if collection else SINGLE_OPTIONS
    for key, value in params:
        if key.startswith("@"):
            continue
        if key in seen:
            raise bad_request(f"Query option '{key}' was specified more than once, but it must be specified at "
                              "most once.")
        if key == "$skip":
            raise bad_request("The query parameter $skip is not supported. Use the @odata.nextLink of the "
                              "previous page (Prefer: odata.maxpagesize) to page through results.")
        if key not in allowed:
            raise unsupported_parameter(key)
        seen[key] = value
    opts = QueryOptions(select=parse_select(meta, seen.get("$select")))
    if "$filter" in seen:
        opts.filter = compile_filter(meta, seen["$filter"], aliases, store)
    opts.orderby = parse_orderby(meta, seen.get("$orderby"))
    opts.top = parse_top(seen.get("$top"))
    opts.count = parse_bool("$count", seen.get("$count"))
    if "$expand" in seen:
        if store is None:
            raise unsupported_parameter("$expand")
        opts.expand = parse_expand(store, meta, seen["$expand"], aliases)
    if "$skiptoken" in seen:
        opts.cookie = parse_skiptoken(seen["$skiptoken"], meta, opts.orderby)
    return opts


def unsupported_parameter(key: str) -> ServiceError:
    return bad_request(f"The query parameter '{key}' is not supported here by the Dataverse emulator.")


# -- execution ------------------------------------------------------------------------------------------------
def execute(store: Store, meta: Entity, opts: QueryOptions, page_size: int, paged: bool) -> Page:
    """Filter, order and cut one page. `paged` is False when `$top` (not maxpagesize) limits the answer."""
    table = store.tables[meta.name]
    flt = opts.filter
    if flt is not None and flt.ids is not None:
        candidates: Any = [table[i] for i in flt.ids if i in table]
    else:
        candidates = table.values()
    rows = [r for r in candidates if flt.predicate(r) is True] if flt is not None else list(candidates)
    total = len(rows)
    limit = page_size
    pid = meta.primary_id
    if not opts.orderby:
        by_id = _id_key(pid)
        if opts.cookie is not None:
            last_key = opts.cookie.last[-1]
            rows = [r for r in rows if by_id(r) > last_key]
        page = heapq.nsmallest(limit + 1, rows, key=by_id)
    else:
        page = _ordered_page(rows, pid, opts, limit)
    more = paged and len(page) > limit
    page = page[:limit]
    token = _skiptoken(meta, opts, page) if more else None
    return Page(page, total, token)


def _id_key(pid: str) -> Any:
    """Sort key of a row by its primary key, in SQL Server's uniqueidentifier order (as Dataverse pages)."""
    return lambda r: sql_guid_key(r[pid])


def _sort_values(row: dict[str, Any], orderby: list[tuple[Attr, bool]], pid: str) -> list[Any]:
    return [order_key(attr, row.get(attr.name)) for attr, _ in orderby] + [sql_guid_key(row[pid])]


def _ordered_page(rows: list[dict[str, Any]], pid: str, opts: QueryOptions, limit: int) -> list[dict[str, Any]]:
    rows.sort(key=_id_key(pid))
    for attr, desc in reversed(opts.orderby):
        rows.sort(key=lambda r, a=attr: _null_first(order_key(a, r.get(a.name))), reverse=desc)
    start = 0
    if opts.cookie is not None:
        lo, hi = 0, len(rows)
        while lo < hi:  # first row sorting strictly after the cookie's row
            mid = (lo + hi) // 2
            if _compare(_sort_values(rows[mid], opts.orderby, pid), opts.cookie.last, opts.orderby) <= 0:
                lo = mid + 1
            else:
                hi = mid
        start = lo
    return rows[start : start + limit + 1]


def _null_first(key: Any) -> tuple[int, Any]:
    return (0, 0) if key is None else (1, key)


def _compare(a: list[Any], b: list[Any], orderby: list[tuple[Attr, bool]]) -> int:
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        kx, ky = _null_first(x), _null_first(y)
        if kx == ky:
            continue
        result = -1 if kx < ky else 1
        return -result if i < len(orderby) and orderby[i][1] else result
    return 0


def _skiptoken(meta: Entity, opts: QueryOptions, page: list[dict[str, Any]]) -> str:
    root = ET.Element("cookie", page=str(opts.cookie.page if opts.cookie else 1))
    last = _sort_values(page[-1], opts.orderby, meta.primary_id)
    for (attr, _), value in zip(opts.orderby, last, strict=False):
        ET.SubElement(root, attr.name, last=json.dumps(value))
    ET.SubElement(root, meta.primary_id, last="{" + page[-1][meta.primary_id].upper() + "}",
                  first="{" + page[0][meta.primary_id].upper() + "}")
    inner = quote(quote(ET.tostring(root, encoding="unicode"), safe=""), safe="")
    number = (opts.cookie.page if opts.cookie else 1) + 1
    return f'<cookie pagenumber="{number}" pagingcookie="{inner}" istracking="False" />'


def parse_skiptoken(token: str, meta: Entity, orderby: list[tuple[Attr, bool]]) -> Cookie:
    """Read back a token this server issued for the same ordering; anything else is a 400."""
    try:
        m = _COOKIE.match(token.strip())
        if m is None:
            raise ValueError("not a paging cookie")
        root = ET.fromstring(unquote(unquote(m.group(2))))
        children = list(root)
        names = [a.name for a, _ in orderby] + [meta.primary_id]
        if root.tag != "cookie" or [c.tag for c in children] != names:
            raise ValueError("cookie does not match the query")
        last: list[Any] = [json.loads(c.attrib["last"]) for c in children[:-1]]
        last.append(sql_guid_key(str(uuid.UUID(children[-1].attrib["last"].strip("{}")))))
        return Cookie(int(m.group(1)), last)
    except (ValueError, KeyError, ET.ParseError):
        raise bad_request("The $skiptoken is not a valid paging cookie for this query. Use the @odata.nextLink "
                          "of the previous page unchanged.") from None


def next_link(api_url: str, relative_path: str, raw_query: str, skiptoken: str) -> str:
    """The request's own URL with `$skiptoken` replaced by the new paging cookie."""
    kept = [p for p in raw_query.split("&") if p and not unquote(p).startswith("$skiptoken=")]
    kept.append("$skiptoken=" + quote(skiptoken, safe="="))
    return f"{api_url}{relative_path}?{'&'.join(kept)}"
