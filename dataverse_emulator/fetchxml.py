"""FetchXML -> QueryExpression, as the `FetchXmlToQueryExpression` function answers it.

The result is the Web API JSON form of a QueryExpression: enums by member name (`"And"`, `"Equal"`), each
condition value wrapped as `{"Value": "...", "Type": "System.Int32"}` with the .NET type taken from the
attribute's metadata (the shape Microsoft's own Python SDK sends). Supported: `<entity>`, `<attribute>`,
`<all-attributes>`, `<order>`, nested `<filter type="and|or">`, `<condition>` with a `value` attribute or
`<value>` children, `<link-entity>` (name/from/to/alias/link-type, its own attributes, filters, links) and
the fetch attributes `distinct`, `no-lock`, `top`, `count`, `page`. Bad XML, an unknown entity or attribute
and an unknown operator are 400 errors, as on the service.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from .errors import ServiceError
from .schema import (
    BIGINT,
    BOOLEAN,
    DATETIME,
    DECIMAL,
    INTEGER,
    MONEY,
    PICKLIST,
    SCHEMA,
    STATE,
    STATUS,
    UNIQUEID,
    Entity,
)

QE_TYPE = "Microsoft.Dynamics.CRM.QueryExpression"

# FetchXML operator -> ConditionOperator member name.
OPERATORS: dict[str, str] = {
    "eq": "Equal", "ne": "NotEqual", "neq": "NotEqual", "gt": "GreaterThan", "ge": "GreaterEqual",
    "lt": "LessThan", "le": "LessEqual", "like": "Like", "not-like": "NotLike", "in": "In", "not-in": "NotIn",
    "between": "Between", "not-between": "NotBetween", "null": "Null", "not-null": "NotNull",
    "begins-with": "BeginsWith", "not-begin-with": "DoesNotBeginWith", "ends-with": "EndsWith",
    "not-end-with": "DoesNotEndWith", "on": "On", "on-or-after": "OnOrAfter", "on-or-before": "OnOrBefore",
    "eq-userid": "EqualUserId", "ne-userid": "NotEqualUserId", "today": "Today", "yesterday": "Yesterday",
    "tomorrow": "Tomorrow", "this-year": "ThisYear", "last-year": "LastYear", "next-year": "NextYear",
    "last-x-days": "LastXDays", "next-x-days": "NextXDays", "olderthan-x-days": "OlderThanXDays",
    "last-seven-days": "Last7Days", "next-seven-days": "Next7Days",
}

_NET_TYPES = {
    INTEGER: "System.Int32", STATE: "System.Int32", STATUS: "System.Int32", PICKLIST: "System.Int32",
    BIGINT: "System.Int64", BOOLEAN: "System.Boolean", DATETIME: "System.DateTime", MONEY: "System.Decimal",
    DECIMAL: "System.Decimal", UNIQUEID: "System.Guid",
}


def query_error(message: str, code: str = "0x80041103") -> ServiceError:
    """A query the service refuses (0x80041103: QueryBuilderNoAttribute and its siblings)."""
    return ServiceError(400, code, message)


def entity_meta(name: str) -> Entity:
    meta = SCHEMA.get((name or "").lower())
    if meta is None:
        raise query_error(
            f"The entity with a name = '{name}' with namemapping = 'Logical' was not found in the MetadataCache.",
            "0x80041102",
        )
    return meta


def attr_type(meta: Entity, attribute: str) -> str:
    attr = meta.attrs.get(attribute)
    if attr is None:
        raise query_error(
            f"'{meta.name}' entity doesn't contain attribute with Name = '{attribute}' and NameMapping = 'Logical'."
        )
    return attr.type


def net_type(meta: Entity, attribute: str) -> str:
    """The .NET type name a condition value on this attribute carries."""
    attr = meta.attrs[attribute]
    if attr.is_lookup:
        return "System.Guid"
    return _NET_TYPES.get(attr.type, "System.String")


def fetch_to_query(fetchxml: str) -> dict[str, Any]:
    """Parse FetchXML into a QueryExpression (JSON form). Raises ServiceError(400) on any problem."""
    if not isinstance(fetchxml, str) or not fetchxml.strip():
        raise query_error("The FetchXml parameter is required.", "0x80040203")
    try:
        root = ET.fromstring(fetchxml)
    except ET.ParseError as exc:
        raise query_error(f"Invalid XML: {exc}", "0x80040203") from exc
    if root.tag != "fetch":
        raise query_error(f"The root element must be 'fetch', not '{root.tag}'.", "0x80040203")
    entity_el = root.find("entity")
    if entity_el is None or not entity_el.get("name"):
        raise query_error("The fetch element must contain an entity element with a name.", "0x80040203")
    meta = entity_meta(entity_el.get("name", ""))
    query: dict[str, Any] = {"@odata.type": "#" + QE_TYPE, "EntityName": meta.name}
    query.update(_node_parts(entity_el, meta))
    query["Distinct"] = _flag(root.get("distinct"))
    query["NoLock"] = _flag(root.get("no-lock"))
    top = root.get("top")
    query["TopCount"] = int(top) if top else None
    query["PageInfo"] = {
        "PageNumber": int(root.get("page") or 0), "Count": int(root.get("count") or 0),
        "ReturnTotalRecordCount": _flag(root.get("returntotalrecordcount")), "PagingCookie": root.get("paging-cookie"),
    }
    return query


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1")


def _node_parts(node: ET.Element, meta: Entity) -> dict[str, Any]:
    """ColumnSet, Criteria, Orders and LinkEntities of an <entity> or <link-entity> element."""
    columns: list[str] = []
    for el in node.findall("attribute"):
        name = el.get("name", "")
        attr_type(meta, name)
        columns.append(name)
    filters = [_filter(f, meta) for f in node.findall("filter")]
    if len(filters) == 1:
        criteria = filters[0]
    else:
        criteria = {"FilterOperator": "And", "Conditions": [], "Filters": filters}
    orders = []
    for el in node.findall("order"):
        name = el.get("attribute", "")
        attr_type(meta, name)
        order = "Descending" if _flag(el.get("descending")) else "Ascending"
        orders.append({"AttributeName": name, "OrderType": order})
    return {
        "ColumnSet": {"AllColumns": node.find("all-attributes") is not None, "Columns": columns},
        "Criteria": criteria,
        "Orders": orders,
        "LinkEntities": [_link(el, meta) for el in node.findall("link-entity")],
    }


def _filter(node: ET.Element, meta: Entity) -> dict[str, Any]:
    kind = (node.get("type") or "and").lower()
    if kind not in ("and", "or"):
        raise query_error(f"Invalid filter type '{kind}'; expected 'and' or 'or'.", "0x80040203")
    return {
        "FilterOperator": "And" if kind == "and" else "Or",
        "Conditions": [_condition(c, meta) for c in node.findall("condition")],
        "Filters": [_filter(f, meta) for f in node.findall("filter")],
    }


def _condition(node: ET.Element, meta: Entity) -> dict[str, Any]:
    attribute = node.get("attribute", "")
    if node.get("entityname"):
        raise query_error("Conditions on a link-entity alias (entityname) are not supported by the emulator.")
    attr_type(meta, attribute)
    op = (node.get("operator") or "").lower()
    if op not in OPERATORS:
        raise query_error(f"The condition operator '{op}' is not valid or not supported.", "0x80040203")
    raw = [node.get("value")] if node.get("value") is not None else [v.text or "" for v in node.findall("value")]
    kind = net_type(meta, attribute)
    if op in ("last-x-days", "next-x-days", "olderthan-x-days"):
        kind = "System.Int32"
    values = [{"Value": _typed_text(v, kind), "Type": kind} for v in raw if v is not None]
    return {"AttributeName": attribute, "Operator": OPERATORS[op], "Values": values}


def _typed_text(value: str, kind: str) -> str:
    if kind == "System.Boolean":
        return "true" if value.strip().lower() in ("1", "true") else "false"
    if kind == "System.Guid":
        return value.strip().strip("{}").lower()
    return value


def _link(node: ET.Element, parent: Entity) -> dict[str, Any]:
    meta = entity_meta(node.get("name", ""))
    to_attr, from_attr = node.get("to", ""), node.get("from", "")
    attr_type(parent, to_attr)
    attr_type(meta, from_attr)
    link_type = (node.get("link-type") or "inner").lower()
    parts = _node_parts(node, meta)
    return {
        "LinkFromEntityName": parent.name, "LinkFromAttributeName": to_attr,
        "LinkToEntityName": meta.name, "LinkToAttributeName": from_attr,
        "JoinOperator": "LeftOuter" if link_type == "outer" else "Inner",
        "EntityAlias": node.get("alias"), "Columns": parts["ColumnSet"], "LinkCriteria": parts["Criteria"],
        "Orders": parts["Orders"], "LinkEntities": parts["LinkEntities"],
    }
