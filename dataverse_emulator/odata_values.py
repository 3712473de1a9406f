"""Typed values for `$filter`: a stored value in comparable form, and a literal checked against its column's
type the way the service checks it (a wrong type is a 400 naming both types)."""

from __future__ import annotations

import uuid
from typing import Any

from odata_query import ast

from . import schema as S
from .errors import bad_request
from .schema import Attr
from .serialize import EDM_TYPES, normalize_datetime
from .store import Ref

_STRING_TYPES = {S.STRING, S.MEMO, S.ENTITYNAME}
_INT_TYPES = {S.INTEGER, S.BIGINT, S.PICKLIST, S.STATE, S.STATUS}
_LITERAL_EDM = {ast.String: "Edm.String", ast.Integer: "Edm.Int32", ast.Float: "Edm.Double",
                ast.Boolean: "Edm.Boolean", ast.GUID: "Edm.Guid", ast.DateTime: "Edm.DateTimeOffset",
                ast.Date: "Edm.Date"}


def value_key(attr: Attr, value: Any) -> Any:
    """A stored value in comparable form (strings case-folded, lookups as their id, datetimes normalised)."""
    if value is None:
        return None
    if isinstance(value, Ref):
        return value.id
    t = attr.type
    if t in _STRING_TYPES:
        return str(value).casefold()
    if t == S.DATETIME:
        return _dt_key(str(value))
    if t == S.UNIQUEID:
        return str(value).lower()
    return value


def _dt_key(value: str) -> str:
    try:
        norm = normalize_datetime(value)
    except ValueError:
        return value
    return norm + "T00:00:00Z" if len(norm) == 10 else norm


def coerce_loose(attr: Attr, value: Any) -> Any:
    """An In value (JSON strings allowed for every type, as Microsoft's SDK sends them) in comparable form."""
    if value is None:
        return None
    t = attr.type
    try:
        if attr.is_lookup or t == S.UNIQUEID:
            return str(uuid.UUID(str(value)))
        if t in _STRING_TYPES:
            return str(value).casefold()
        if t in _INT_TYPES and not isinstance(value, bool):
            return int(value)
        if t in (S.DECIMAL, S.MONEY) and not isinstance(value, bool):
            return float(value)
        if t == S.BOOLEAN:
            return value if isinstance(value, bool) else {"true": True, "false": False}[str(value).lower()]
        if t == S.DATETIME:
            return _dt_key(str(value))
    except (ValueError, KeyError, TypeError):
        pass
    raise bad_request(f"Cannot convert the literal '{value}' to the expected type "
                      f"'{EDM_TYPES.get(t, 'Edm.String')}' (property '{attr.name}').")


def coerce_literal(attr: Attr, node: ast._Node, op: str) -> Any:
    """A filter literal compared with `attr`, type-checked as the service would."""
    if isinstance(node, ast.Null):
        return None
    t = attr.type
    ok = (
        (t in _STRING_TYPES and isinstance(node, ast.String))
        or ((t in _INT_TYPES or t in (S.DECIMAL, S.MONEY)) and isinstance(node, ast.Integer | ast.Float))
        or (t == S.BOOLEAN and isinstance(node, ast.Boolean))
        or (t == S.DATETIME and isinstance(node, ast.DateTime | ast.Date))
        or ((attr.is_lookup or t == S.UNIQUEID) and isinstance(node, ast.GUID | ast.String))
    )
    if not ok:
        found = _LITERAL_EDM.get(type(node), type(node).__name__)
        raise bad_request(f"A binary operator with incompatible types was detected. Found operand types "
                          f"'{EDM_TYPES.get(t, 'Edm.String')}' and '{found}' for operator kind '{op}'.")
    if isinstance(node, ast.Integer | ast.Float):
        return node.py_val
    return coerce_loose(attr, node.val if isinstance(node, ast.GUID | ast.DateTime | ast.Date) else node.py_val)
