"""`$apply`: the subset of OData aggregation Dataverse serves (webapi/query/aggregate-data.md).

Transformations, chained with `/`: `filter(<$filter>)`, `groupby((col,...))`, `groupby((col,...),aggregate(...))`,
`aggregate(...)`; aggregates `$count as alias` and `col with sum|min|max|average|countdistinct as alias`.
Each group row leaves out its null grouping columns (as the documented responses do); values get a
FormattedValue when asked. More than 50,000 matching rows is refused (the aggregate limit). Refused with a
400 naming it: grouping by a date/time column ("groupby with datetime values is not supported"), navigation
paths, other transformations, and any other query option next to `$apply`.
"""

from __future__ import annotations

import re
from typing import Any

from . import schema as S
from .context import Context
from .errors import ServiceError, bad_request
from .odata import compile_filter
from .odata_values import value_key
from .prefer import Annotations, applied, parse_prefer
from .qoptions import split_top
from .schema import Attr, Entity
from .serialize import FORMATTED, formatted_value, output_name, resolve_column
from .wire import ApiRequest, ApiResponse, json_response

RECORD_LIMIT = 50000
_AGG = re.compile(r"^(\S+)\s+with\s+(sum|min|max|average|countdistinct)\s+as\s+(\w+)$", re.I)
_COUNT = re.compile(r"^\$count\s+as\s+(\w+)$", re.I)
Spec = tuple[str, Attr | None, str]  # (function, column, alias)


def answer(ctx: Context, req: ApiRequest, meta: Entity, params: list[tuple[str, str]]) -> ApiResponse:
    other = [k for k, _ in params if k != "$apply" and not k.startswith("@")]
    if other:
        raise bad_request(f"$apply cannot be combined with {', '.join(other)} by the emulator.")
    aliases = {k: v for k, v in params if k.startswith("@")}
    text = dict(params)["$apply"]
    prefs = parse_prefer(req.header("prefer"))
    annotations = Annotations.from_prefs(prefs)
    steps = split_top(text, "/")
    with ctx.store.lock:
        rows = ctx.store.rows(meta.name)
        groups: list[Attr] | None = None
        specs: list[Spec] = []
        for step in steps:
            name, _, inner = step.partition("(")
            name, inner = name.strip(), inner[:-1] if inner.endswith(")") else None
            if inner is None:
                raise bad_request(f"Syntax error in $apply: '{step}'.")
            if name == "filter" and groups is None and not specs:
                flt = compile_filter(meta, inner, aliases, ctx.store)
                rows = [r for r in rows if flt.predicate(r) is True]
            elif name == "groupby" and groups is None and not specs:
                groups, specs = _groupby(meta, inner)
            elif name == "aggregate" and groups is None and not specs:
                specs = _aggregates(meta, inner)
            else:
                raise bad_request(f"The $apply transformation '{name}' is not supported here by the emulator.")
        if len(rows) > RECORD_LIMIT:
            raise ServiceError(400, "0x8004E023", "The maximum record limit is exceeded. Reduce the number of "
                               "records.")
        values = _evaluate(meta, rows, groups or [], specs, annotations)
    body = {"@odata.context": f"{ctx.api_url}$metadata#{meta.set_name}", "value": values}
    return json_response(200, body, applied(prefs, "odata.include-annotations"))


def _column(meta: Entity, name: str) -> Attr:
    if "/" in name:
        raise bad_request(f"Navigation paths in $apply ('{name}') are not supported by the emulator.")
    return resolve_column(meta, name)


def _groupby(meta: Entity, inner: str) -> tuple[list[Attr], list[Spec]]:
    parts = split_top(inner)
    if not parts or not (parts[0].startswith("(") and parts[0].endswith(")")):
        raise bad_request(f"Syntax error in groupby: '{inner}'; expected groupby((col,...)[,aggregate(...)]).")
    groups = [_column(meta, c) for c in split_top(parts[0][1:-1]) if c]
    for attr in groups:
        if attr.type == S.DATETIME:
            raise bad_request("groupby with datetime values is not supported.")
    specs: list[Spec] = []
    for extra in parts[1:]:
        if not extra.startswith("aggregate(") or not extra.endswith(")"):
            raise bad_request(f"Only aggregate(...) may follow the grouping columns in groupby: '{extra}'.")
        specs += _aggregates(meta, extra[len("aggregate("):-1])
    return groups, specs


def _aggregates(meta: Entity, inner: str) -> list[Spec]:
    specs: list[Spec] = []
    for part in split_top(inner):
        if (m := _COUNT.match(part)) is not None:
            specs.append(("count", None, m.group(1)))
        elif (m := _AGG.match(part)) is not None:
            attr = _column(meta, m.group(1))
            function = m.group(2).lower()
            numeric = attr.type in (S.INTEGER, S.BIGINT, S.DECIMAL, S.MONEY)
            if function in ("sum", "average") and not numeric:
                raise bad_request(f"{function} needs a numeric column; '{attr.name}' is {attr.type}.")
            specs.append((function, attr, m.group(3)))
        else:
            raise bad_request(f"Unsupported aggregate expression '{part}' (emulator: $count as x, "
                              "col with sum|min|max|average|countdistinct as x).")
    return specs


def _evaluate(meta: Entity, rows: list[dict[str, Any]], groups: list[Attr], specs: list[Spec],
              annotations: Annotations) -> list[dict[str, Any]]:
    buckets: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in rows:
        key = tuple(value_key(a, row.get(a.name)) for a in groups)
        buckets.setdefault(key, []).append(row)
    if not groups:
        buckets = {(): rows}
    formatted = annotations.wants(FORMATTED)
    out = []
    for key in sorted(buckets, key=lambda k: tuple((0, 0) if v is None else (1, v) for v in k)):
        members = buckets[key]
        item: dict[str, Any] = {}
        for attr in groups:
            value = members[0].get(attr.name)
            if value is None:
                continue
            value = value.id if isinstance(value, tuple) else value
            if formatted and (label := formatted_value(meta.name, attr, value)) is not None:
                item[output_name(attr) + FORMATTED] = label
            item[output_name(attr)] = value
        for function, attr, alias in specs:
            value = _aggregate(function, attr, members)
            if formatted and value is not None:
                label = f"{value:,}" if attr is None or function in ("count", "countdistinct") else (
                    formatted_value(meta.name, attr, value))
                if label is not None:
                    item[alias + FORMATTED] = label
            item[alias] = value
        out.append(item)
    return out


def _aggregate(function: str, attr: Attr | None, rows: list[dict[str, Any]]) -> Any:
    if function == "count":
        return len(rows)
    assert attr is not None
    values = [r.get(attr.name) for r in rows if r.get(attr.name) is not None]
    values = [v.id if isinstance(v, tuple) else v for v in values]
    if function == "countdistinct":
        return len({value_key(attr, v) for v in values})
    if not values:
        return None
    if function == "sum":
        return sum(values)
    if function == "average":
        return sum(values) / len(values)
    return min(values) if function == "min" else max(values)
